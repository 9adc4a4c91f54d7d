-- 070_task_index: the event log's schedule-task index keyed by the task alone.
--
-- sql/001's events_task_ts keyed every event by (schedule_task, ts): 32 bytes an
-- event, the largest index of the schema (loadtests/README.md, bytes per event). Its
-- readers (F3's filter of message_event_log by task and time; the click ranking
-- under a schedule-task or channel filter, tracker.reports.clicks) always bound the
-- time too, and each monthly partition is already pruned by it and has a BRIN on ts:
-- a btree on the task alone deduplicates its equal keys (one entry per run of a
-- task's events on a page list) and, ANDed with the BRIN, finds the same rows.
-- Measured on the 1M-event set: 7.3 bytes an event instead of 31.8; F3's busiest task
-- over a day 41 ms against 50, a month 56 against 73; the rankings by task as fast or
-- faster.
DROP INDEX events_task_ts;
CREATE INDEX events_task ON events (schedule_task);
