"""An Ops Manager client independent of keygate's code: HTTP Digest as Python implements it.

Usage: ops_manager_digest_client.py BASE_URL PUBLIC_KEY PRIVATE_KEY PROJECT_ID

Creates an agent API key in the project, then lists the project's agent keys, with `requests`'
HTTPDigestAuth when `requests` is installed and otherwise with the standard library's
HTTPDigestAuthHandler. Prints one JSON document: which client ran, and both answers.
"""

import json
import sys
import urllib.request

base, public_key, private_key, project = sys.argv[1:5]
path = f"{base}/groups/{project}/agentapikeys"
body = {"desc": "made by the Python client"}

try:
    import requests
    from requests.auth import HTTPDigestAuth

    session = requests.Session()
    session.auth = HTTPDigestAuth(public_key, private_key)
    created = session.post(path, json=body)
    listed = session.get(path + "?pretty=true")
    answers = [(created.status_code, created.json()), (listed.status_code, listed.json())]
    client = "requests"
except ImportError:
    passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    passwords.add_password(None, base, public_key, private_key)
    opener = urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(passwords))
    request = urllib.request.Request(
        path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    answers = []
    for call in (request, path + "?pretty=true"):
        with opener.open(call) as response:
            answers.append((response.status, json.load(response)))
    client = "urllib"

print(json.dumps({"client": client, "created": answers[0], "listed": answers[1]}))
