-- 056_times_as_microseconds: the shipper sends its rollups' times as integers.
-- asyncpg encodes a timestamptz array element in ~0.7 us (a datetime's astimezone and
-- subtraction in Python) against ~0.2 us for a bigint, and a landed click carries ~17
-- of them; the journal holds microseconds since the Unix epoch anyway. These two
-- functions convert exactly (integer microseconds; a double holds every value below
-- 2^53, i.e. past the year 2200) and are inlined by the planner (both STABLE,
-- as timestamptz + interval and extract from a timestamptz are: an IMMUTABLE label
-- would stop the inlining).
CREATE FUNCTION tracker_time(us bigint) RETURNS timestamptz
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN timestamptz '1970-01-01 00:00:00+00' + us * interval '1 microsecond';

CREATE FUNCTION tracker_us(t timestamptz) RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN (extract(epoch FROM t) * 1000000)::bigint;
