-- wrk script for benches/compare.sh: POST a body of BYTES bytes (default 4096) to the URL,
-- e.g. /echo, which answers it back. No request() function: wrk formats the request once
-- after init and sends the same bytes every time.
--
--     wrk -t1 -c64 -d10s -s benches/wrk/post.lua http://127.0.0.1:8080/echo -- 4096
function init(args)
    local bytes = tonumber(args[1]) or 4096
    wrk.method = "POST"
    wrk.body = string.rep("a", bytes)
    wrk.headers["Content-Type"] = "application/octet-stream"
end
