-- wrk script for benches/compare.sh: every write sends DEPTH requests for the URL's path at
-- once (HTTP/1.1 pipelining), as TechEmpower's plaintext test does. wrk counts and times
-- each response.
--
--     wrk -t1 -c64 -d10s -s benches/wrk/pipeline.lua http://127.0.0.1:8080/plaintext -- 16
local depth = 16

function init(args)
    depth = tonumber(args[1]) or depth
    local requests = {}
    for i = 1, depth do
        requests[i] = wrk.format()
    end
    batch = table.concat(requests)
end

function request()
    return batch
end
