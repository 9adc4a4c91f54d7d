"""``tracker token open|click|unsubscribe``: mint a real token to try the endpoints by hand.

It records a delivery for the given user, exactly as sending would, so the events
of the hits show up with that user in the event log and the reports."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import click

from tracker.cli.database import connect, database_url, migrate_or_exit, settings_or_exit
from tracker.store import campaigns, deliveries
from tracker.tokens import CHANNELS_BY_NAME, Purpose, TokenCodec, TokenData
from tracker.urls import UnsafeURL, check_target_url

PATHS = {Purpose.OPEN: "o", Purpose.CLICK: "c", Purpose.UNSUBSCRIBE: "u"}


async def _mint(dsn: str, codec: TokenCodec, purpose: Purpose, *, campaign_id: str, task: str,
                user: str, channel: str, test: bool, url: str, position: int) -> str:
    async with connect(dsn) as conn:
        campaign = await campaigns.ensure_campaign(conn, campaign_id, channel)
        task_id = await campaigns.ensure_schedule_task(conn, campaign.id, task)
        delivery_id = await campaigns.DeliveryIds().mint(conn)
        await deliveries.record_prepared(conn, [deliveries.PreparedDelivery(
            delivery_id, campaign.id, task_id, CHANNELS_BY_NAME[channel], user,
            has_html=purpose is Purpose.OPEN or None, is_test=test)])
    data = TokenData(delivery_id, campaign.id, task_id, CHANNELS_BY_NAME[channel], test,
                     position, url)
    return codec.mint(purpose, data)


def _command(purpose: Purpose) -> Callable[..., None]:
    @click.option("--campaign", "campaign_id", default="manual", show_default=True)
    @click.option("--task", default="manual", show_default=True, help="Schedule task id.")
    @click.option("--user", default="tester", show_default=True)
    @click.option("--channel", default="email", show_default=True,
                  type=click.Choice(sorted(CHANNELS_BY_NAME)))
    @click.option("--test", is_flag=True, help="Mint a test-send token (served, never recorded).")
    def command(campaign_id: str, task: str, user: str, channel: str, test: bool,
                url: str = "", position: int = 0) -> None:
        if purpose is Purpose.CLICK:
            try:
                check_target_url(url)
            except UnsafeURL as exc:
                raise click.BadParameter(str(exc), param_hint="--url") from exc
        settings = settings_or_exit()
        dsn = database_url(settings)
        migrate_or_exit(dsn)
        codec = TokenCodec(settings.secret_keys)
        value = asyncio.run(_mint(dsn, codec, purpose, campaign_id=campaign_id, task=task,
                                  user=user, channel=channel, test=test, url=url,
                                  position=position))
        click.echo(f"{settings.public_url}/{PATHS[purpose]}/{value}")

    return command


@click.group()
def token() -> None:
    """Mint a signed tracking URL for a new delivery (for trying things by hand)."""


token.command("open", help="An open-pixel URL.")(_command(Purpose.OPEN))
token.command("unsubscribe", help="An unsubscribe-page URL.")(_command(Purpose.UNSUBSCRIBE))
token.command("click", help="A click-redirect URL to --url.")(
    click.option("--url", required=True, help="The http(s) target.")(
        click.option("--position", default=0, show_default=True, type=click.IntRange(0, 65535),
                     help="The link's position in the message.")(_command(Purpose.CLICK))))
