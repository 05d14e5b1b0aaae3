-- wrk script: POST /agents, each request a new agent name, with the bearer token given in the
-- environment. Names carry a per-run prefix, so a run never collides with an earlier one.
local prefix = os.getenv("CREATE_PREFIX")
local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("CREATE_TOKEN")
request = function()
    counter = counter + 1
    return wrk.format(nil, nil, nil, '{"name":"' .. prefix .. '-' .. counter .. '"}')
end
