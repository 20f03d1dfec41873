"""Every endpoint of coffer's Vault-compatible API, through hvac.

Run by vault_clients.rs against a real coffer server. The address and
tokens come from the environment (VAULT_ADDR, VAULT_TOKEN; the userpass
login's name and password in CANARY_USER / CANARY_PASSWORD; the value
written in CANARY_VALUE), never from argv. Any failed expectation raises,
so the process exits non-zero; "all endpoints ok" is printed at the end.
"""

import os

import hvac
from hvac import exceptions

addr = os.environ["VAULT_ADDR"]
root = os.environ["VAULT_TOKEN"]
canary = os.environ["CANARY_VALUE"]
client = hvac.Client(url=addr, token=root)
kv = client.secrets.kv.v2


def expect_error(kind, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except kind:
        return
    raise AssertionError(f"{call.__name__} did not raise {kind.__name__}")


# sys
assert client.sys.is_initialized() is True
health = client.sys.read_health_status(method="GET")
assert health["initialized"] and not health["sealed"], health
seal = client.sys.read_seal_status()
assert seal["sealed"] is False and seal["t"] == 1, seal
leader = client.sys.read_leader_status()
assert leader["ha_enabled"] is False, leader
mounts = client.sys.list_mounted_secrets_engines()
assert mounts["data"]["secret/"]["options"]["version"] == "2", mounts
assert client.is_authenticated()

# KV version 2: writes, reads, versions, check-and-set
kv.create_or_update_secret(path="app/dev/db", secret={"user": "app", "password": canary})
kv.create_or_update_secret(path="app/dev/db", secret={"user": "app", "password": "second"}, cas=1)
expect_error(exceptions.InvalidRequest, kv.create_or_update_secret,
             path="app/dev/db", secret={"user": "stale"}, cas=1)
read = kv.read_secret_version(path="app/dev/db", raise_on_deleted_version=True)
assert read["data"]["data"] == {"user": "app", "password": "second"}, read
assert read["data"]["metadata"]["version"] == 2
first = kv.read_secret_version(path="app/dev/db", version=1, raise_on_deleted_version=True)
assert first["data"]["data"]["password"] == canary
expect_error(exceptions.InvalidPath, kv.read_secret_version, path="app/dev/none",
             raise_on_deleted_version=True)
# Text values read as {"value": ...}; non-string fields are refused.
kv.create_or_update_secret(path="app/dev/text", secret={"value": "plain"})
assert kv.read_secret_version(path="app/dev/text", raise_on_deleted_version=True)["data"]["data"] == {"value": "plain"}
expect_error(exceptions.InvalidRequest, kv.create_or_update_secret,
             path="app/dev/num", secret={"port": 5432})

# patch: hvac's own (read, then write) and the HTTP merge patch
kv.patch(path="app/dev/db", secret={"host": "db.internal"})
client.adapter.request(
    "PATCH", "/v1/secret/data/app/dev/db",
    json={"data": {"user": None, "port": "5432"}},
    headers={"Content-Type": "application/merge-patch+json"},
)
data = kv.read_secret_version(path="app/dev/db", raise_on_deleted_version=True)["data"]["data"]
assert data == {"password": "second", "host": "db.internal", "port": "5432"}, data

# delete, undelete, destroy, metadata, lists
kv.delete_latest_version_of_secret(path="app/dev/db")
expect_error(exceptions.InvalidPath, kv.read_secret_version, path="app/dev/db",
             raise_on_deleted_version=True)
kv.undelete_secret_versions(path="app/dev/db", versions=[4])
kv.delete_secret_versions(path="app/dev/db", versions=[1])
kv.destroy_secret_versions(path="app/dev/db", versions=[1])
meta = kv.read_secret_metadata(path="app/dev/db")["data"]
assert meta["current_version"] == 4 and meta["oldest_version"] == 1, meta
assert meta["versions"]["1"]["destroyed"] is True, meta
assert meta["versions"]["4"]["deletion_time"] == "", meta
kv.update_metadata(path="app/dev/db", max_versions=0)
expect_error(exceptions.InvalidRequest, kv.update_metadata, path="app/dev/db", max_versions=3)
keys = kv.list_secrets(path="app/dev")["data"]["keys"]
assert keys == ["db", "text"], keys
assert kv.list_secrets(path="")["data"]["keys"] == ["app/"]
kv.delete_metadata_and_all_versions(path="app/dev/text")
meta = kv.read_secret_metadata(path="app/dev/text")["data"]
assert all(v["destroyed"] for v in meta["versions"].values()), meta

# policies, in Vault's syntax, through both APIs
policy = (
    'path "secret/data/app/*" {\n  capabilities = ["read"]\n}\n'
    'path "secret/metadata/app/*" {\n  capabilities = ["read", "list"]\n}\n'
)
client.sys.create_or_update_policy(name="app-reader", policy=policy)
assert client.sys.read_policy(name="app-reader")["data"]["rules"] == policy
assert "app-reader" in client.sys.list_policies()["data"]["policies"]
client.sys.create_or_update_acl_policy(name="acl-reader", policy=policy)
assert client.sys.read_acl_policy(name="acl-reader")["data"]["policy"] == policy
assert "acl-reader" in client.sys.list_acl_policies()["data"]["keys"]
expect_error(exceptions.InvalidRequest, client.sys.create_or_update_policy,
             name="wide", policy='path "secret/data/app/*" { capabilities = ["read"] }')
client.sys.delete_acl_policy(name="acl-reader")
client.sys.delete_policy(name="app-reader")
client.sys.create_or_update_policy(name="app-reader", policy=policy)

# tokens
created = client.auth.token.create(policies=["app-reader"], ttl="1h", explicit_max_ttl="2h",
                                   display_name="ci")["auth"]
child_token, accessor = created["client_token"], created["accessor"]
assert created["policies"] == ["app-reader"] and created["renewable"], created
assert client.auth.token.lookup_accessor(accessor)["data"]["display_name"] == "ci"
child = hvac.Client(url=addr, token=child_token)
assert child.auth.token.lookup_self()["data"]["accessor"] == accessor
assert child.auth.token.lookup(child_token)["data"]["accessor"] == accessor
child.auth.token.renew_self()
child.auth.token.renew(child_token)
caps = child.adapter.post("/v1/sys/capabilities-self",
                          json={"paths": ["secret/data/app/dev/db", "secret/data/other"]})
assert caps["secret/data/app/dev/db"] == ["read"] and caps["secret/data/other"] == ["deny"], caps
assert child.secrets.kv.v2.read_secret_version(path="app/dev/db", raise_on_deleted_version=True)["data"]["data"]["host"] == "db.internal"
expect_error(exceptions.Forbidden, child.secrets.kv.v2.create_or_update_secret,
             path="app/dev/db", secret={"x": "y"})
client.auth.token.revoke_accessor(accessor)
expect_error(exceptions.Forbidden, child.auth.token.lookup_self)
other = client.auth.token.create(policies=["app-reader"])["auth"]["client_token"]
hvac.Client(url=addr, token=other).auth.token.revoke(other)
third = client.auth.token.create(policies=["app-reader"])["auth"]["client_token"]
hvac.Client(url=addr, token=third).auth.token.revoke_self()
assert not hvac.Client(url=addr, token=third).is_authenticated()

# userpass, for a coffer user
person = hvac.Client(url=addr)
login = person.auth.userpass.login(username=os.environ["CANARY_USER"],
                                   password=os.environ["CANARY_PASSWORD"])
assert login["auth"]["policies"] == ["app-reader"], login
assert person.is_authenticated()
assert person.auth.token.lookup_self()["data"]["path"] == "auth/userpass/login"

# unknown routes: Vault's 404
assert client.read("transit/keys/k") is None
expect_error(exceptions.InvalidPath, client.adapter.get, "/v1/transit/keys/k")

print("all endpoints ok")
