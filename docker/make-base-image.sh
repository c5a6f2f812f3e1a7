#!/bin/sh
# Optional: builds a local `debian:12` image with debootstrap, for a machine
# whose Docker engine cannot pull from Docker Hub but can reach a Debian
# mirror.  Everywhere else `docker build` pulls the official debian:12 and
# this script is not needed.
#
#   sudo docker/make-base-image.sh [MIRROR]   (default http://deb.debian.org/debian)
#
# Needs root, debootstrap and a running Docker engine.  The image is a
# minbase bookworm with the apt sources (bookworm, -updates, -security) and
# the apt settings the official image has (no pkgcache.bin, gzipped
# indexes, no translations), so the Dockerfile's layers come out the same
# size as on the official image.  Takes about a minute.
set -eu
mirror=${1:-http://deb.debian.org/debian}
security=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
rootfs=$(mktemp -d "${TMPDIR:-/var/tmp}/debian12-rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT

debootstrap --variant=minbase bookworm "$rootfs" "$mirror"

rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
a=$rootfs/etc/apt/apt.conf.d
clean='rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true'
cat >"$a/docker-clean" <<EOF
DPkg::Post-Invoke { "$clean"; };
APT::Update::Post-Invoke { "$clean"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::GzipIndexes "true";' >"$a/docker-gzip-indexes"
echo 'Acquire::Languages "none";' >"$a/docker-no-languages"
echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$a/docker-autoremove-suggests"
rm -rf "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
       "$rootfs"/var/lib/apt/lists/*

tar --numeric-owner -C "$rootfs" -c . |
  docker import -c 'CMD ["bash"]' -m "debootstrap --variant=minbase bookworm $mirror" - debian:12
docker image ls debian:12
