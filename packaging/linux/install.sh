#!/bin/sh
# Installs Promptbank from this unpacked tarball for the current user (default ~/.local) or
# under another prefix: the app folder, a `promptbank` command, the menu entry and the icons.
# Usage: ./install.sh [--prefix DIR]       ./install.sh --uninstall [--prefix DIR]
# Your library and the GPU engine (in ~/.local/share/promptbank) are never touched.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
prefix="$HOME/.local"
action=install
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="$2"; shift 2 ;;
        --uninstall) action=uninstall; shift ;;
        *) echo "install.sh: unknown option '$1'; use --prefix DIR or --uninstall" >&2; exit 2 ;;
    esac
done
app="$prefix/lib/promptbank"
bin="$prefix/bin"
menu="$prefix/share/applications"
icons="$prefix/share/icons/hicolor"
sizes="16 32 48 64 128 256 512"

rm -rf "$app" "$bin/promptbank" "$menu/promptbank.desktop" "$icons/scalable/apps/promptbank.svg"
for size in $sizes; do rm -f "$icons/${size}x${size}/apps/promptbank.png"; done
if [ "$action" = uninstall ]; then
    echo "Promptbank removed from $prefix."
    exit 0
fi

mkdir -p "$app" "$bin" "$menu" "$icons/scalable/apps"
cp -a "$here/promptbank/." "$app/"
ln -s "$app/promptbank" "$bin/promptbank"
for size in $sizes; do
    mkdir -p "$icons/${size}x${size}/apps"
    cp "$here/icons/promptbank-$size.png" "$icons/${size}x${size}/apps/promptbank.png"
done
cp "$here/icons/promptbank.svg" "$icons/scalable/apps/promptbank.svg"
sed "s|^Exec=.*|Exec=$app/promptbank gui --examples|" "$here/promptbank.desktop" \
    > "$menu/promptbank.desktop"
# Menus and icon caches refresh by themselves on most desktops; these only speed it up.
command -v update-desktop-database >/dev/null && update-desktop-database "$menu" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q "$icons" 2>/dev/null || true

echo "Promptbank installed in $app."
echo "Start it from the applications menu, or run: $bin/promptbank"
case ":$PATH:" in *":$bin:"*) ;; *) echo "($bin is not on your PATH yet.)" ;; esac
