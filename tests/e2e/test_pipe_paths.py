"""The documented pipe, run from another directory, with relative build/env_file/bind-mount paths.

    cd elsewhere
    luma-compose render -f ../app/compose.yaml | docker compose --project-directory ../app -f - up -d --build

Relative paths in the file resolve against the project directory, so the routed service is built from
its own context, reads its env_file and sees its bind mount; and its content is served on P-S:port.
"""

from __future__ import annotations

import subprocess

import dockerkit as dk


def test_pipe_from_another_directory_with_relative_paths(busybox_image, unique, tmp_path):
    project = unique("pipe")
    app = tmp_path / "app"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    dk.write(app / "web" / "Dockerfile", f"FROM {busybox_image}\nCOPY page.txt /page.txt\n")
    dk.write(app / "web" / "page.txt", "from-build-context\n")
    dk.write(app / "web.env", "FROM_ENV=from-env-file\n")
    dk.write(app / "data" / "msg", "from-bind-mount\n")
    dk.write(app / "compose.yaml", f"""\
# a project with every kind of relative path
services:
  web:
    build: ./web
    image: {project}-web:test
    env_file: ./web.env
    volumes:
      - ./data:/data:ro
    command: ["sh", "-c", "mkdir -p /www && cat /data/msg /page.txt > /www/index.html && echo $$FROM_ENV >> /www/index.html && echo ok > /www/up && exec httpd -f -p 3000 -h /www"]
    x-luma:
      hosts: [{project}.example.test]
      port: 3000
""")
    rendered = subprocess.run(["luma-compose", "render", "-f", "../app/compose.yaml", "-p", project],
                              cwd=elsewhere, capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    try:
        up = dk.run(["docker", "compose", "--project-directory", "../app", "-f", "-", "up", "-d", "--build"],
                    input=rendered.stdout, cwd=elsewhere, timeout=300, check=False)
        assert up.returncode == 0, up.stderr
        with dk.container(dk.unique("client"), busybox_image, networks=[f"{project}_luma"],
                          cmd=["sleep", "600"]) as client:
            dk.wait_http(client, f"http://{project}-web:3000/up")
            page = dk.http_get(client, f"http://{project}-web:3000/")
        assert page.split() == ["from-bind-mount", "from-build-context", "from-env-file"]
    finally:
        dk.run(["docker", "compose", "-p", project, "--project-directory", str(app), "-f", "-", "down", "-v",
                "--remove-orphans", "--timeout", "1"], input=rendered.stdout, check=False)
        dk.force_remove_project(project)
        dk.docker("image", "rm", "-f", f"{project}-web:test", check=False)
