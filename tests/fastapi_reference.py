"""FastAPI's own answers to refused Agentex requests: keygate's Agentex request models
declared as pydantic v2 models, the way Agentex declares its own, behind FastAPI routes of
the same paths. Reads a JSON list of requests on stdin, each {"method", "path", "body"} with
the body's raw text (or null for no body), and prints FastAPI's answer to each as
{"status", "body"}."""

import json
import sys
from datetime import datetime
from enum import Enum
from typing import Dict, Optional

from fastapi import FastAPI, Query
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, Field


class AgentAPIKeyType(str, Enum):
    internal = "internal"
    external = "external"
    github = "github"
    slack = "slack"


class WebhookSource(str, Enum):
    github = "github"
    slack = "slack"


class Model(BaseModel):
    # keygate refuses a field a model does not have rather than drop it unseen.
    model_config = ConfigDict(extra="forbid")


class CreateAPIKeyRequest(Model):
    agent_id: Optional[str] = None
    agent_name: Optional[str] = None
    name: str
    api_key_type: AgentAPIKeyType = AgentAPIKeyType.external
    api_key: Optional[str] = None
    expires_at: Optional[datetime] = None


class WebhookTriggerRequest(Model):
    agent_name: str
    forward_path: str
    name: str
    base_url: Optional[str] = None
    secret: Optional[str] = None
    source: Optional[AgentAPIKeyType] = AgentAPIKeyType.github


class VerifySignatureRequest(Model):
    agent_id: Optional[str] = None
    agent_name: Optional[str] = None
    source: WebhookSource
    headers: Dict[str, str]
    body_base64: str


class RotateRequest(Model):
    grace_period_seconds: Optional[int] = Field(None, ge=0)
    expires_at: Optional[datetime] = None


app = FastAPI()


@app.post("/agent_api_keys")
def create_api_key(body: CreateAPIKeyRequest):
    return {}


@app.post("/agent_api_keys/webhook-trigger")
def create_webhook_trigger(body: WebhookTriggerRequest):
    return {}


@app.post("/agent_api_keys/verify-signature")
def verify_signature(body: VerifySignatureRequest):
    return {}


@app.post("/agent_api_keys/{id}/rotate")
def rotate(id: str, body: Optional[RotateRequest] = None):
    return {}


@app.get("/agent_api_keys")
def list_api_keys(
    agent_id: Optional[str] = None,
    agent_name: Optional[str] = None,
    limit: int = Query(50, ge=1, le=1000),
    page_number: int = Query(1, ge=1),
):
    return []


@app.get("/agent_api_keys/{id}/usage")
def get_agent_api_key_usage(id: str, hours: int = Query(24, ge=1, le=720)):
    return {}


@app.get("/agent_api_keys/name/{name}")
def get_api_key_by_name(
    name: str,
    agent_id: Optional[str] = None,
    agent_name: Optional[str] = None,
    api_key_type: AgentAPIKeyType = AgentAPIKeyType.external,
):
    return {}


client = TestClient(app)
answers = []
for request in json.load(sys.stdin):
    body = request["body"]
    response = client.request(
        request["method"],
        request["path"],
        content=None if body is None else body.encode(),
        headers={} if body is None else {"content-type": "application/json"},
    )
    answers.append({"status": response.status_code, "body": response.json()})
json.dump(answers, sys.stdout)
