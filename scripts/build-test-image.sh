#!/usr/bin/env bash
# Builds berth's test image, berth-test/busybox:latest: a `FROM scratch` image holding
# one static busybox (sh, sleep, httpd, wget, nc, dd, ps, ...) and a /www/index.html.
# No registry is reachable on the project's machines, so tests build their image here.
#
# Idempotent and safe to run concurrently: if the image exists with the current
# recipe version, nothing is built. Installs Debian's busybox-static if /bin/busybox
# is missing. Prints the image id on stdout (and nothing else); progress goes to stderr.
#
#   scripts/build-test-image.sh            # build if missing, print the id
#   BERTH_TEST_IMAGE=x/y:z scripts/build-test-image.sh
set -euo pipefail

IMAGE="${BERTH_TEST_IMAGE:-berth-test/busybox:latest}"
# Bump when the image's contents change, so existing images are rebuilt.
RECIPE=2
# Applets the tests rely on; the build fails if busybox lacks one.
REQUIRED_APPLETS="sh sleep httpd wget nc true false env cat echo kill ls mkdir head dd yes ps"

log() { echo "build-test-image: $*" >&2; }

current_id() {
  docker image inspect -f '{{.Id}} {{index .Config.Labels "berth.test-image.recipe"}}' "$IMAGE" \
    2>/dev/null | awk -v r="$RECIPE" '$2 == r { print $1 }'
}

id="$(current_id || true)"
if [ -n "$id" ]; then
  echo "$id"
  exit 0
fi

# Serialize concurrent builds (several test binaries may start at once).
lock="${TMPDIR:-/tmp}/berth-build-test-image.lock"
exec 9>"$lock"
flock 9
id="$(current_id || true)"
if [ -n "$id" ]; then
  echo "$id"
  exit 0
fi

if [ ! -x /bin/busybox ]; then
  log "installing busybox-static"
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
  if ! "${sudo_cmd[@]}" apt-get install -y -q busybox-static >&2; then
    "${sudo_cmd[@]}" apt-get update -q >&2
    "${sudo_cmd[@]}" apt-get install -y -q busybox-static >&2
  fi
fi

applets="$(/bin/busybox --list)"
for a in $REQUIRED_APPLETS; do
  if ! grep -qx "$a" <<<"$applets"; then
    log "/bin/busybox has no '$a' applet"
    exit 1
  fi
done

dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
root="$dir/rootfs"
mkdir -p "$root/bin" "$root/www" "$root/etc" "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
# Every applet busybox has, so tests are not limited to the required list.
for a in $applets; do
  [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"
done
echo 'hello from berth' >"$root/www/index.html"
echo 'root:x:0:0:root:/:/bin/sh' >"$root/etc/passwd"
echo 'nobody:x:65534:65534:nobody:/:/bin/false' >>"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
echo 'nogroup:x:65534:' >>"$root/etc/group"
chmod 1777 "$root/tmp"
cat >"$dir/Dockerfile" <<EOF
FROM scratch
COPY rootfs/ /
ENV PATH=/bin
LABEL berth.test-image.recipe=$RECIPE
CMD ["sh"]
EOF

log "building $IMAGE"
DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$dir" >/dev/null
id="$(current_id)"
if [ -z "$id" ]; then
  log "built $IMAGE but cannot inspect it"
  exit 1
fi
echo "$id"
