# The web console (README "Web console"): its browser libraries from npm, and the browser its tests drive.
# Included by the main Makefile (`-include mk/*.mk`).
#
#   make console-vendor    `npm ci` in console/ (versions and hashes pinned by console/package-lock.json), then
#                          the libraries' dist files copied into tda_ray/service/http/console/vendor/ (git
#                          ignores it; the wheel ships it). Redone only when the lock file (or this file) changes.
#   make console-browser   Debian's chromium for tests/test_console.py (apt-get, as root; nothing if present)
#   make console-test      only the console's browser tests
#
# npm's cache is .cache/npm; nothing is fetched at run time (the page works offline).

NPM ?= npm
CHROMIUM ?= /usr/bin/chromium
CONSOLE_SRC := console
CONSOLE_VENDOR := tda_ray/service/http/console/vendor
CONSOLE_STAMP := $(CONSOLE_VENDOR)/.stamp
CONSOLE_MODULES := $(CONSOLE_SRC)/node_modules

SETUP_STEPS += console-vendor console-browser

.PHONY: console-vendor console-browser console-test

console-vendor: $(CONSOLE_STAMP)

# Module files are renamed *.js (served as text/javascript everywhere); the import map of index.html names
# them. Each library's licence goes along (ECharts is Apache-2.0 with a NOTICE).
$(CONSOLE_STAMP): $(CONSOLE_SRC)/package-lock.json $(CONSOLE_SRC)/package.json mk/console.mk
	@command -v $(NPM) >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm; } || \
	  { echo "console-vendor: $(NPM) is missing (apt-get install nodejs npm)"; exit 1; }
	cd $(CONSOLE_SRC) && $(NPM) ci --cache $(CURDIR)/.cache/npm --ignore-scripts --no-audit --no-fund
	rm -rf $(CONSOLE_VENDOR) && mkdir -p $(CONSOLE_VENDOR)/licenses
	cp $(CONSOLE_MODULES)/echarts/dist/echarts.esm.min.mjs $(CONSOLE_VENDOR)/echarts.js
	cp $(CONSOLE_MODULES)/preact/dist/preact.mjs $(CONSOLE_VENDOR)/preact.js
	cp $(CONSOLE_MODULES)/preact/hooks/dist/hooks.mjs $(CONSOLE_VENDOR)/hooks.js
	cp $(CONSOLE_MODULES)/htm/dist/htm.mjs $(CONSOLE_VENDOR)/htm.js
	cp $(CONSOLE_MODULES)/echarts/LICENSE $(CONSOLE_VENDOR)/licenses/echarts-LICENSE
	cp $(CONSOLE_MODULES)/echarts/NOTICE $(CONSOLE_VENDOR)/licenses/echarts-NOTICE
	cp $(CONSOLE_MODULES)/preact/LICENSE $(CONSOLE_VENDOR)/licenses/preact-LICENSE
	cp $(CONSOLE_MODULES)/htm/LICENSE $(CONSOLE_VENDOR)/licenses/htm-LICENSE
	touch $@

# apt-get update first: a fresh machine's package lists may be empty or old.
console-browser:
	@if [ -x $(CHROMIUM) ]; then \
	  :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; \
	else \
	  echo "console-browser: $(CHROMIUM) is missing and installing it needs root (apt-get install chromium);" \
	       "tests/test_console.py skips without it"; \
	fi

console-test: setup
	$(PY) -m pytest -p no:cacheprovider --timeout=$(TEST_TIMEOUT) tests/test_console.py $(PYTEST_ARGS)
