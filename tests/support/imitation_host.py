"""The imitation droplet of the end-to-end and fleet tests: faster than a booted one.

tests/host/test_first_boot.py boots the stack's real user-data under real cloud-init; these
tests need many hosts and many deploys, so they run the program's remote commands against a
container that has what the first boot leaves, made by HOST_SETUP below. Test shims, each
named where it is made: `cloud-init status` (CLOUD_INIT_SHIM), the edge's TLS site
(SITE_SHIM), and the setup itself (HOST_SETUP, reduced to what the commands rely on).
"""

from __future__ import annotations

from .docker import DockerEngine
from .parity import derived_image

# What a droplet has that the Debian base image lacks (Ubuntu's cloud-init installs the rest).
APP_HOST_DOCKERFILE = """\
FROM {base}
RUN apt-get update -q \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \\
      openssh-server nginx-light sudo python3 \\
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/default
"""

# TEST SHIM: a container has no cloud-init; the droplet's is done when the commands connect.
CLOUD_INIT_SHIM = """#!/bin/sh
# TEST SHIM for cloud-init (tests/support/imitation_host.py): the container is set up.
if [ "$1" = status ]; then echo "status: done"; exit 0; fi
echo "cloud-init test shim: only 'status' is answered" >&2; exit 1
"""

# What cloud-init's users module and setup script leave behind, reduced to this test's needs.
HOST_SETUP = """\
set -eu
useradd --create-home --shell /bin/bash deploy
install -d -m 0700 -o deploy -g deploy /home/deploy/.ssh
printf '%s\\n' "$DEPLOY_PUBLIC_KEY" > /home/deploy/.ssh/authorized_keys
chown deploy:deploy /home/deploy/.ssh/authorized_keys
chmod 0600 /home/deploy/.ssh/authorized_keys
printf 'deploy ALL=(ALL) NOPASSWD:ALL\\n' > /etc/sudoers.d/90-cloud-init-users
chmod 0440 /etc/sudoers.d/90-cloud-init-users
printf '%s' "$CLOUD_INIT_SHIM" > /usr/local/bin/cloud-init
printf '%s' "$FILE_INSTALLER" > "$FILE_INSTALLER_PATH"
chmod 0755 "$FILE_INSTALLER_PATH"
chmod 0755 /usr/local/bin/cloud-init
install -d -m 0755 "$(dirname "$HOST_READY")"
mkdir -p "$(dirname "$INCLUDE")"
printf '%s' "$INITIAL_INCLUDE" > "$INCLUDE"
printf '%s' "$SITE" > /etc/nginx/conf.d/clipper.conf
nginx -t -q
nginx
mkdir -p /run/sshd
/usr/sbin/sshd -p "$SSH_PORT" -o ListenAddress=127.0.0.1 -o PasswordAuthentication=no \\
  -o PermitRootLogin=no -E /var/log/sshd.log
touch "$HOST_READY"
"""

# TEST SHIM for the edge's site: the real site ends TLS with certbot's certificate on :443;
# this one proxies plain HTTP on a loopback port, through the same active-colour include.
SITE_SHIM = """\
include {include};
server {{
    listen 127.0.0.1:{port};
    access_log {access_log};
    location ~ ^/(api/|health$|health/) {{
        proxy_pass http://clipper_backend;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }}
    location / {{
        proxy_pass http://clipper_frontend;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }}
}}
"""


def imitation_host_image(engine: DockerEngine, base_image: str) -> str:
    """The imitation droplet's image, tagged by its Dockerfile (built once per engine)."""
    return derived_image(engine, "clipper-apphost", APP_HOST_DOCKERFILE.format(base=base_image))
