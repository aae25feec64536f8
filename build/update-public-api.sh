#!/usr/bin/env bash
# Regenerates the runtime's declared public API (src/VectorLm.Runtime/PublicAPI.Unshipped.txt) from the code, after a
# deliberate public API change made the build fail with RS0016 (undeclared API) or RS0017 (declared API that is gone).
# Review the diff of the file before committing it: it is the list of what users see.
#
# Unshipped is rebuilt from scratch: everything public that PublicAPI.Shipped.txt does not list is written to it by the
# analyzer's own code fix (RS0016, fix-all). PublicAPI.Shipped.txt is never touched: after a release, move the lines of
# Unshipped into it by hand; removing a shipped member then stays an explicit edit (a *REMOVED* line in Unshipped).
set -euo pipefail
cd "$(dirname "$0")/.."
project=src/VectorLm.Runtime/VectorLm.Runtime.csproj
unshipped=src/VectorLm.Runtime/PublicAPI.Unshipped.txt

printf '#nullable enable\n' > "$unshipped"
# Touches only PublicAPI.Unshipped.txt: RS0016's fix edits no source file.
dotnet format analyzers "$project" --diagnostics RS0016 --severity warn "$@"
git --no-pager diff --stat -- "$unshipped" || true
