"""Property-based fuzzing of every route, from the server's own OpenAPI schema: bodies that fit the schema
and bodies with one field swapped for any JSON value. No answer is a 5xx, every error is OpenAI's JSON,
every 200 stream ends with [DONE], and afterwards the same greedy request answers the same. Seeded
(derandomized) and bounded in examples, so a run is reproducible and short."""

import json

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

KEY = {"Authorization": "Bearer sesame", "content-type": "application/json"}
MODELS = {"/v1/completions": ["lm", "chat"], "/v1/chat/completions": ["chat"], "/v1/embeddings": ["enc"]}
FUZZ = settings(max_examples=200, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) |
                    st.text(max_size=20), lambda inner: st.lists(inner, max_size=4) |
                    st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=8)


def _routes(spec: dict) -> dict[str, dict]:
    """Each POST route's body schema."""
    routes = {}
    for path, operations in spec["paths"].items():
        body = operations.get("post", {}).get("requestBody")
        if body:
            name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
            routes[path] = spec["components"]["schemas"][name]
    return routes


def from_schema(schema: dict, spec: dict) -> st.SearchStrategy:
    """Values that fit a JSON schema, for the subset FastAPI writes for pydantic models: types, anyOf, enum
    and const, number and length bounds, $refs, objects with their properties (each optional one may be left
    out) and dictionaries of additionalProperties."""
    if not isinstance(schema, dict):  # `true`: any value
        return JSON
    if "$ref" in schema:
        return from_schema(spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]], spec)
    if "anyOf" in schema:
        return st.one_of(*[from_schema(s, spec) for s in schema["anyOf"]])
    if "enum" in schema or "const" in schema:
        return st.sampled_from(schema.get("enum", [schema.get("const")]))
    kind = schema.get("type")
    if kind == "object" and "properties" in schema:
        required = set(schema.get("required", []))
        fields = {k: from_schema(v, spec) for k, v in schema["properties"].items()}
        return st.fixed_dictionaries({k: v for k, v in fields.items() if k in required},
                                     optional={k: v for k, v in fields.items() if k not in required})
    if kind == "object":
        return st.dictionaries(st.text(max_size=6), from_schema(schema.get("additionalProperties", {}), spec),
                               max_size=3)
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), spec), max_size=4)
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        if kind == "integer":
            return st.integers(None if low is None else int(low), None if high is None else int(high) - 1
                               if "exclusiveMaximum" in schema else high)
        return st.floats(low, high, allow_nan=False, exclude_min="exclusiveMinimum" in schema,
                         exclude_max="exclusiveMaximum" in schema)
    return {"string": st.text(min_size=schema.get("minLength", 0), max_size=40), "boolean": st.booleans(),
            "null": st.none()}.get(kind, JSON)


def _bodies(routes: dict[str, dict], spec: dict):
    def valid(path):
        return from_schema(routes[path], spec).flatmap(
            lambda body: st.sampled_from(MODELS.get(path, []) * 4 + ["lm", "enc", "nope"]).map(
                lambda m: (path, {**body, "model": m})))

    def sparse(path):  # the required fields and one more, at any value its schema allows: mostly answered
        schema = routes[path]
        optional = sorted(set(schema["properties"]) - set(schema.get("required", [])))
        if not optional:
            return valid(path)
        return st.tuples(valid(path), st.sampled_from(optional)).flatmap(lambda t: from_schema(
            schema["properties"][t[1]], spec).map(lambda value: (path, {**{k: t[0][1][k] for k in schema.get(
                "required", [])}, t[1]: value})))

    def mutated(path):
        fields = sorted(routes[path]["properties"]) + ["unknown"]
        return st.tuples(valid(path), st.sampled_from(fields), JSON).map(
            lambda t: (t[0][0], {**t[0][1], t[1]: t[2]}))

    return st.one_of(*[strategy(p) for strategy in (valid, sparse, mutated) for p in routes])


def _check(response: httpx.Response, body: dict) -> None:
    assert response.status_code < 500, (body, response.text)
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["message"], str) and error["type"] and set(error) == {"message", "type", "param",
                                                                                         "code"}
    elif body.get("stream") is True and "text/event-stream" in response.headers["content-type"]:
        assert response.text.rstrip().endswith("data: [DONE]"), response.text[-300:]


def test_fuzzed_requests_never_break_the_server(served):
    greedy = {"model": "lm", "prompt": "hello world", "max_tokens": 8, "temperature": 0}
    expected = httpx.post(served.url + "/v1/completions", json=greedy, headers=KEY, timeout=60).json()
    spec = served.app.openapi()
    routes = _routes(spec)
    assert set(routes) == {"/v1/completions", "/v1/chat/completions", "/v1/embeddings", "/v1/search", "/v1/answers"}
    sent = []

    @FUZZ
    @given(_bodies(routes, spec))
    def one(case):
        path, body = case
        for field, most in (("max_tokens", 24), ("max_completion_tokens", 24), ("n", 3)):  # keep the run short
            if type(body.get(field)) is int and body[field] > most:
                body[field] = most
        response = httpx.post(served.url + path, content=json.dumps(body), headers=KEY, timeout=120)
        sent.append(response.status_code)
        _check(response, body)

    one()
    assert sent.count(200) >= 15 and sent.count(400) >= 15  # both sides of validation were reached
    again = httpx.post(served.url + "/v1/completions", json=greedy, headers=KEY, timeout=60).json()
    assert again["choices"][0]["text"] == expected["choices"][0]["text"]
    health = httpx.get(served.url + "/health", timeout=60)
    assert health.status_code == 200 and health.json()["status"] == "ok"
