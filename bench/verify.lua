-- wrk script: POST /verify with the body and bearer token given in the environment.
wrk.method = "POST"
wrk.body = os.getenv("VERIFY_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("VERIFY_TOKEN")

local non_ok = 0
response = function(status, headers, body)
  if status ~= 200 then non_ok = non_ok + 1 end
end
