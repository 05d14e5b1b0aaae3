-- wrk script: POST /agents, each request a new agent name, with the bearer token given in the
-- environment. Names carry a per-run prefix, so a run never collides with an earlier one, and
-- the number of the wrk thread, so that threads never collide with each other.
local prefix = os.getenv("CREATE_PREFIX")
local threads = 0
local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("CREATE_TOKEN")
setup = function(thread)
    threads = threads + 1
    thread:set("thread_number", threads)
end
request = function()
    counter = counter + 1
    return wrk.format(nil, nil, nil,
        '{"name":"' .. prefix .. '-' .. thread_number .. '-' .. counter .. '"}')
end
