-- wrk script: POST /verify with the body and bearer token given in the environment.
-- wrk itself reports any "Non-2xx or 3xx responses".
wrk.method = "POST"
wrk.body = os.getenv("VERIFY_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("VERIFY_TOKEN")
