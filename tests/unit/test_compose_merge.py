"""The merge made in Python (compose/merge.py) against Compose as the oracle: for each case, Compose's model of
the merged text equals its model of the files (every profile, the same environment and project). Cases it does
not handle give None (Compose merges those), which is checked too."""

from __future__ import annotations

import pytest

from support.compose_oracle import compose_model
from luma_compose.compose import merge

BASE = """\
name: ${STACK:-app}
services:
  web:
    image: nginx:${TAG:-1}
    command: ["nginx", "-g", "daemon off;"]
    entrypoint: /docker-entrypoint.sh
    environment:
      - A=1
      - B
      - C=${C:-c}
    labels: {team: x, "com.example.z": "1"}
    ports: ["8080:80", "${PORT:-9000}:90"]
    expose: [80, "81"]
    volumes:
      - "${DATA:-./data}:/srv"
      - logs:/var/log
      - ./conf:/etc/nginx/conf.d:ro
    depends_on: [db]
    networks: [default, back]
    dns: 1.1.1.1
    healthcheck: {test: ["CMD", "true"], interval: 10s}
    build: ./web
    x-luma: {hosts: [a.example.com], port: 80}
    profiles: [web]
  db:
    image: postgres
    networks:
      back:
        aliases: [database]
    deploy: {labels: [d=1], resources: {limits: {memory: 64M}}}
networks:
  back:
    name: ${BACK:-back-net}
    labels: [n=1]
volumes:
  logs:
x-common: {a: [1], b: {c: 1}}
"""

CASES = {
    "override scalars and shell commands": "services:\n  web:\n    image: httpd\n    command: [httpd]\n"
                                           "    entrypoint: [/bin/sh]\n    restart: always\n"
                                           "    healthcheck: {test: [CMD, 'false'], retries: 3}\n",
    "environment and labels as list and mapping": "services:\n  web:\n    environment: {A: '2', D: '${D:-d}'}\n"
                                                  "    labels: [team=y, other=1]\n",
    "environment lists both": "services:\n  web:\n    environment: [A=3, E=e]\n",
    "ports and expose append, repeats dropped": "services:\n  web:\n    ports: ['8080:80', '8443:443']\n"
                                                "    expose: [80, 82]\n",
    "volumes unique by target": "services:\n  web:\n    volumes: ['other:/srv', {type: bind, source: ./x, "
                                "target: /x}, './conf2:/etc/nginx/conf.d']\nvolumes: {other: {}}\n",
    "depends_on list into mapping": "services:\n  web:\n    depends_on: {db: {condition: service_healthy}, "
                                    "cache: {condition: service_started, required: false}}\n"
                                    "  cache:\n    image: redis\n",
    "networks list into mapping": "services:\n  web:\n    networks: {back: {aliases: [w]}, front: {}}\n"
                                  "networks: {front: {name: '${FRONT:-front}'}, back: {labels: {m: '2'}}}\n",
    "build string into mapping": "services:\n  web:\n    build: {dockerfile: Dockerfile.dev, args: [X=1]}\n",
    "dns string and list": "services:\n  web:\n    dns: [8.8.8.8]\n    dns_search: example.com\n",
    "deploy labels and resources": "services:\n  db:\n    deploy: {labels: {e: '2'}, resources: {limits: {cpus: '0.5'}}}\n",
    "a new service in a profile": "services:\n  admin:\n    image: nginx\n    profiles: [admin]\n"
                                  "    depends_on: {web: {condition: service_started, required: false}}\n",
    "null keeps the earlier value": "services:\n  web:\n    networks:\n      back:\n",
    "extensions merge": "x-common: {a: [2], b: {d: 2}}\nservices:\n  web:\n    x-luma: {health: /health}\n",
    "name and a renamed default network": "name: other\nnetworks: {default: {name: shared}}\n",
    "the same port and expose written otherwise": "services:\n  web:\n    ports: [{target: 80, published: '8080'}]\n"
                                                  "    expose: ['80', 81]\n",
    "the same volume in the long syntax": "services:\n  web:\n    volumes: [{type: volume, source: logs, "
                                          "target: /var/log, read_only: true}]\n",
    "lists appended": "services:\n  web:\n    cap_add: [NET_ADMIN]\n    profiles: [web, debug]\n"
                      "    env_file: .env.web\n    tmpfs: /tmp\n",
    "lists both ways": "services:\n  web:\n    networks: [front]\n    depends_on: [db, cache]\n  cache:\n"
                       "    image: redis\nnetworks: {front: {}}\n",
    "a command as a string": "services:\n  web:\n    command: nginx -g 'daemon off;'\n    entrypoint: [/x]\n",
    "!reset and !override": "services:\n  web:\n    ports: !reset []\n    volumes: !override ['./other:/srv']\n"
                            "    profiles: !reset []\n    environment: !override {Z: '1'}\n    dns: !reset null\n"
                            "    build: !override {context: ./other}\n  db:\n    deploy: !reset {}\n",
    "!override of a new key and a scalar": "services:\n  web:\n    image: !override httpd\n"
                                           "    cap_add: !override [NET_ADMIN]\n",
    "top-level secrets and configs": "secrets: {s: {file: ./s.txt}}\nconfigs: {c: {content: hi}}\n"
                                     "services:\n  db:\n    secrets: [s]\n    configs: [c]\n",
}


def _files(tmp_path, *texts):
    paths = []
    for i, text in enumerate(texts):
        path = tmp_path / f"f{i}.yaml"
        path.write_text(text)
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("env", [{}, {"DATA": "/srv/data", "PORT": "9100", "STACK": "s", "TAG": "2"}])
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_merge_reads_as_composes(tmp_path, case, env):
    texts = [BASE, CASES[case], "services:\n  web:\n    restart: unless-stopped\n"]
    merged = merge.merge_texts(texts)
    assert merged is not None
    (tmp_path / ".env.web").write_text("W=1\n")
    env = {"COMPOSE_PROFILES": "*", **env}
    rc, want = compose_model("", str(tmp_path), "p", env, _files(tmp_path, *texts))
    assert rc == 0, want
    rc, got = compose_model(merged, str(tmp_path), "p", env)
    assert rc == 0, (got, merged)
    assert got == want, merged


@pytest.mark.parametrize("override", [
    "services:\n  web:\n    image: !unknown null\n",
    "services:\n  web:\n    ports: [!reset null]\n",
    "include: [other.yaml]\n",
    "services:\n  web:\n    extends: {service: db}\n",
    "services:\n  web:\n    logging: {driver: local}\n",
    "services:\n  web:\n    ulimits: {nofile: 10}\n",
    "services:\n  web:\n    environment: [A=1]\n    volumes: ['${V}:${TARGET}']\n",
    "services:\n  web:\n    build: [x]\n",
    "services:\n  web:\n    environment: [{A: 1}]\n",
    "services: [web]\n",
    "when: 2001-12-14\n",
])
def test_what_it_does_not_handle_is_left_to_compose(override):
    base = BASE.replace("    dns: 1.1.1.1\n", "    dns: 1.1.1.1\n    logging: {driver: json-file}\n"
                        "    ulimits: {nofile: 5}\n")
    assert merge.merge_texts([base, override]) is None


def test_a_volume_target_is_found_past_variables():
    assert merge.volume_target("${DATA:-./data}:/srv") == "/srv"
    assert merge.volume_target("${A:-x}:/srv/:ro") == "/srv"
    assert merge.volume_target("/anonymous") == "/anonymous"
    assert merge.volume_target({"type": "bind", "source": ".", "target": "/x"}) == "/x"
    with pytest.raises(merge.Unsupported):
        merge.volume_target("data:${TARGET}")


def test_the_text_reads_back_as_the_data():
    from ruamel.yaml import YAML

    data = {"s": ["3000", "yes", "a b", "${X}", ".5", "x:", "http://a", "multi\nline", "é"], "n": [1, 1.5, True, None],
            "k": {"1": {}, "on": [], "nested": [{"a": 1, "b": [1, [2]]}]}}
    assert YAML(typ="safe").load(merge.dump(data)) == data
    for version in ("1.1", "1.2"):
        y = YAML(typ="safe")
        y.version = (1, 1) if version == "1.1" else (1, 2)
        assert y.load(merge.dump(data)) == data
