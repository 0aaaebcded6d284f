#!/usr/bin/env bash
# chromium-install.sh installs Debian's chromium, which report's HTML test
# (report/browser_test.go) uses to render the report headless and take a
# screenshot. Idempotent: nothing is done when chromium is already in PATH.
# Must run as root (apt-get). Prints the version it finds.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# fonts-dejavu-core: the page's sans-serif fallback; the plots embed
	# their own font names and fall back to it too.
	apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
chromium --version
