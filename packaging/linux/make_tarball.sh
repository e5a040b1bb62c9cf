#!/usr/bin/env bash
# dist/promptbank-VERSION-linux-ARCH.tar.gz (`make package-linux`): the built bundle with
# install.sh, the desktop entry and the icons.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(dist/promptbank/promptbank --version | cut -d' ' -f2)
name="promptbank-$version-linux-$(uname -m)"
stage="build/tarball/$name"
rm -rf "$stage"
mkdir -p "$stage/icons"
cp -al dist/promptbank "$stage/promptbank"  # hard links: no second copy of 1.5 GB
cp packaging/linux/install.sh resources/promptbank.desktop "$stage/"
cp resources/icons/promptbank-*.png resources/icons/promptbank.svg "$stage/icons/"
tar -C build/tarball -czf "dist/$name.tar.gz" "$name"
echo "dist/$name.tar.gz: $(du -h "dist/$name.tar.gz" | cut -f1)"
