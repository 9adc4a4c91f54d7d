-- 051_report_html_email: "are opens measurable here" (F8, F24) without walking deliveries.
--
-- Reports show open figures only where some non-test email in scope carried the pixel
-- (an HTML part). For a push or LINE campaign the answer was "no" only after reading
-- every one of its deliveries (70+ ms for 15,000 on the bench data). This partial index
-- holds exactly the deliveries that make opens measurable, so the question is one index
-- probe: an entry for the campaign (and schedule task) exists or it does not.
-- Write cost: one entry per HTML email delivery (duplicate keys are deduplicated;
-- 5 MB for 700,000 of them); push, LINE, text-only and test sends add nothing.
CREATE INDEX deliveries_html_email ON deliveries (campaign, schedule_task)
    WHERE channel = 1 AND has_html AND NOT is_test;
