-- wrk script for benchmarks/http_images.py --case ranges: GET one file as random
-- byte ranges on keep-alive connections, the way a NetBooting Mac reads NetBoot.dmg.
--
--   wrk ... -s benchmarks/wrk_ranges.lua URL -- FILE_SIZE RANGE_LENGTH SEED
--
-- Each request asks for RANGE_LENGTH bytes starting at a random multiple of
-- RANGE_LENGTH inside the file (the last range may be short). `done` prints one
-- JSON line with wrk's totals, which the benchmark parses.

local size, length

function init(args)
    size = tonumber(args[1])
    length = tonumber(args[2])
    -- Each thread its own sequence: the seed and the thread's address.
    math.randomseed(tonumber(args[3]) + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 1000003)
end

function request()
    local slots = math.floor((size + length - 1) / length)
    local first = math.random(0, slots - 1) * length
    local last = math.min(first + length, size) - 1
    return wrk.format("GET", nil, { ["Range"] = "bytes=" .. first .. "-" .. last })
end

function done(summary, latency, requests)
    local errors = summary.errors
    io.write(string.format(
        '{"requests": %d, "bytes": %d, "duration_us": %d, "connect": %d, "read": %d, '
            .. '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}\n',
        summary.requests, summary.bytes, summary.duration, errors.connect, errors.read,
        errors.write, errors.status, errors.timeout,
        latency:percentile(50), latency:percentile(99)
    ))
end
