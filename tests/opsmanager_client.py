"""Drives keygate with the `opsmanager` client from PyPI (PingMePy's successor), as its users
call it: HTTP Digest with a programmatic key pair, its own URLs, its own decoding.

Usage: opsmanager_client.py BASE_URL PUBLIC_KEY PRIVATE_KEY PROJECT_ID PROJECT_NAME

Prints one JSON document of what each call returned (the client's objects as dicts).
"""

import dataclasses
import json
import sys

from opsmanager import OpsManagerClient

base, public_key, private_key, project_id, project_name = sys.argv[1:6]
client = OpsManagerClient(
    base_url=base,
    public_key=public_key,
    private_key=private_key,
    rate_limit=100.0,
    rate_burst=100,
    retry_count=0,
)


def plain(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


print(
    json.dumps(
        {
            "projects": plain(client.projects.list()),
            "by_id": plain(client.projects.get(project_id)),
            "by_name": plain(client.projects.get_by_name(project_name)),
            "agent_keys": plain(client.agents.list_api_keys(project_id)),
            "version": plain(client.version.get_service_version()),
        },
        default=str,
    )
)
