-- Delivery ids the tracker mints and ids senders choose never meet (issue: hostile
-- traffic). Senders may report outcomes for deliveries the tracker did not mint,
-- under ids of their own; those must be below 10^12. The tracker mints from 10^12
-- up (tracker/store/deliveries.py: MINTED_FROM), and an outcome naming an unknown
-- id in that range is refused, so a sender can no longer take an id the sequence
-- is about to hand out. Ids minted before this migration stay where they are.
SELECT setval('delivery_id_blocks',
              greatest((SELECT last_value FROM delivery_id_blocks), 1000000000000 - 1000));
