#!/usr/bin/env bash
# Prints the Debian archive mirror this machine's apt already uses (deb822 *.sources first, then
# one-line sources.list), for the suite SUITE (default: bookworm), e.g. http://deb.debian.org/debian.
set -euo pipefail
suite=${1:-bookworm}
shopt -s nullglob
for f in /etc/apt/sources.list.d/*.sources; do
    # A stanza per paragraph: take its first URI when its Suites list has exactly $suite.
    awk -v suite="$suite" 'BEGIN { RS = "" }
        {
            uri = ""; ok = 0; enabled = 1
            n = split($0, line, "\n")
            for (i = 1; i <= n; i++) {
                split(line[i], w, /[ \t]+/)
                if (w[1] == "URIs:") uri = w[2]
                if (w[1] == "Enabled:" && tolower(w[2]) == "no") enabled = 0
                if (w[1] == "Suites:") for (j = 2; j in w; j++) if (w[j] == suite) ok = 1
            }
            if (uri != "" && ok && enabled) { print uri; exit }
        }' "$f"
done | head -n 1 | grep . && exit 0
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    # deb [options] URI SUITE COMPONENTS...
    sed -e 's/\[[^]]*\]//' "$f" | awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2; exit }'
done | head -n 1 | grep . && exit 0
echo "no Debian $suite mirror in /etc/apt/sources.list{,.d}" >&2
exit 1
