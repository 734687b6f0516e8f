#!/usr/bin/env bash
# Refreshes the Swagger UI files embedded into the binary (served at /docs by
# the API listener, app/docs.go) from the npm package swagger-ui-dist:
#
#   scripts/swagger-ui.sh           copy the pinned version's files into app/swaggerui/
#   scripts/swagger-ui.sh --check   fail when the committed files differ from that version
#
# To move to another version, change VERSION below, run the script, and
# check /docs (e2e TestDocs_*). index.html and init.js in app/swaggerui/
# are ours, not the package's.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=5.35.0
FILES=(swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css favicon-32x32.png LICENSE NOTICE)
DEST=app/swaggerui

check=0
[[ ${1:-} == --check ]] && check=1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "swagger-ui-dist@$VERSION" --silent --no-audit --no-fund >/dev/null && tar xzf "swagger-ui-dist-$VERSION.tgz")

status=0
for f in "${FILES[@]}"; do
	if [[ $check == 1 ]]; then
		if ! cmp -s "$tmp/package/$f" "$DEST/$f"; then
			echo "swagger-ui: $DEST/$f differs from swagger-ui-dist@$VERSION: run scripts/swagger-ui.sh"
			status=1
		fi
	else
		cp "$tmp/package/$f" "$DEST/$f"
	fi
done
if [[ $check == 0 ]]; then
	echo "$VERSION" >"$DEST/VERSION"
	echo "swagger-ui: copied swagger-ui-dist@$VERSION into $DEST"
elif [[ $(cat "$DEST/VERSION") != "$VERSION" ]]; then
	echo "swagger-ui: $DEST/VERSION is not $VERSION"
	status=1
fi
exit $status
