#!/usr/bin/env bash
# Re-vendor plotly.js's ready-built gl2d bundle (scatter, scattergl, splom, parcoords; MIT) from the npm registry:
# the explorer needs scattergl and lasso/box selection only, and this bundle is a third of the full plotly.min.js
# (1.6 MB vs 4.8 MB), which is most of the page's first-render time. Usage: bash update.sh [VERSION]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="${1:-3.7.0}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "plotly.js-gl2d-dist-min@$version" >/dev/null && tar xzf plotly.js-gl2d-dist-min-*.tgz)
cp "$work/package/plotly-gl2d.min.js" "$here/plotly-gl2d.min.js"
cp "$work/package/LICENSE" "$here/plotly-LICENSE"
echo "vendored plotly.js-gl2d-dist-min $version: $(wc -c <"$here/plotly-gl2d.min.js") bytes"
