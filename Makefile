# jitssh — see README.md. Every target works on a fresh Debian machine with Go.
GO        ?= go
TAGS      := sqlite_fts5
BIN       := bin
DATA      ?= ./data
API       ?= 127.0.0.1:7443
BASTION   ?= 127.0.0.1:2222
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME  ?= 30s
# Packages whose tests start OpenSSH; they need it installed (make deps).
export CGO_ENABLED := 1

.PHONY: all vendor build run demo-target test deps lint fuzz bench clean

all: build

# The console's front-end packages, pinned by console/web/package-lock.json,
# installed the way Go modules are (npm ci, into the ignored node_modules)
# and copied into the ignored console/assets/vendor that jitd embeds.
PLAYER_DIST := console/web/node_modules/asciinema-player/dist/bundle
vendor: console/assets/vendor/asciinema-player.min.js

console/assets/vendor/asciinema-player.min.js: console/web/package-lock.json
	cd console/web && npm ci --ignore-scripts --no-audit --no-fund
	cp $(PLAYER_DIST)/asciinema-player.min.js $(PLAYER_DIST)/asciinema-player.css console/assets/vendor/
	cp console/web/node_modules/asciinema-player/LICENSE console/assets/vendor/LICENSE.asciinema-player 2>/dev/null || true

build: vendor
	$(GO) build -tags $(TAGS) -o $(BIN)/ ./cmd/jitd ./cmd/jit

# Starts the daemon on its embedded default: SQLite and files under $(DATA),
# keys made on first start, the demo policy, API on $(API), bastion on $(BASTION).
run: build
	$(BIN)/jitd serve --init --quickstart --data $(DATA) --api $(API) --bastion $(BASTION)

# Enrols a demo target while `make run` serves (as root): a stock sshd on
# 127.0.0.1:2200 configured only by `jit host join` (scripts/demo-target).
demo-target: build
	DATA=$(DATA) API=$(API) ./scripts/demo-target

# Installs what the tests need when missing: OpenSSH client and server,
# asciinema, zstd (the recordings' format, checked against its own tool),
# ssh-audit, and iproute2 and util-linux (ip, unshare) for the
# test hosts in network namespaces; node and the npm modules of the test
# OpenID provider; versitygw (S3) for the recordings-store tests;
# PostgreSQL 15; HAProxy (the PROXY protocol tests' balancer).
deps:
	@missing=""; \
	[ -e /usr/share/doc/libnss-extrausers ] || missing=1; \
	for b in ssh sshd ssh-keygen ssh-agent sftp scp asciinema zstd ssh-audit ip unshare nsenter useradd visudo crontab atq chromium; do \
	  command -v $$b >/dev/null 2>&1 || [ -x /usr/sbin/$$b ] || missing=1; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq openssh-server openssh-client asciinema zstd ssh-audit iproute2 util-linux passwd sudo cron at chromium libnss-extrausers; \
	fi
	@# The real OpenID provider of the SSO tests (internal/oidctest): node,
	@# and oidc-provider from npm exactly as the lock file pins it.
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm; \
	fi
	@# PostgreSQL 15 for the PostgreSQL store's tests (internal/pgtest runs
	@# its own throwaway cluster; pg_trgm ships in the package).
	@if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql-15; \
	fi
	@# HAProxy in TCP mode with send-proxy-v2, the load balancer of the
	@# PROXY protocol tests (e2e): run unprivileged by the tests themselves.
	@if [ ! -x /usr/sbin/haproxy ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq haproxy; \
	fi
	@# The real S3-compatible server of the recordings tests
	@# (internal/s3test): versitygw, built once into bin/tools.
	@if [ ! -x $(BIN)/tools/versitygw ]; then \
	  GOBIN=$(CURDIR)/$(BIN)/tools $(GO) install github.com/versity/versitygw/cmd/versitygw@v1.8.0; \
	fi
	@cd internal/oidctest/provider && \
	if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then \
	  npm ci --ignore-scripts --no-audit --no-fund && touch node_modules; \
	fi

# The checks (gofmt, vet, staticcheck), then every test with the race
# detector; fuzz targets run their seed corpus.
test: deps vendor lint
	$(GO) test -race -tags $(TAGS) -count=1 -timeout 25m ./...

lint: vendor
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags $(TAGS) ./...
	$(GO) run $(STATICCHECK) -tags $(TAGS) ./...

# Longer fuzzing, one target at a time (FUZZTIME each).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -tags $(TAGS) -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -tags $(TAGS) -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# Benchmarks side by side with OpenSSH; results go to docs/BENCHMARKS.md by hand.
# ./bench/ runs once (-benchtime 1x): each benchmark is a whole bounded
# measurement of jitssh and OpenSSH in the same run and reports its figures
# and ratios as metrics (see docs/BENCHMARKS.md).
bench: deps build
	$(GO) test -tags $(TAGS) -run '^$$' -bench . -benchmem -benchtime 2s ./ca/ ./audit/ ./sessionlog/ ./recstore/
	$(GO) test -tags $(TAGS) -run '^$$' -bench . -benchtime 1x -timeout 30m ./bench/

clean:
	rm -rf $(BIN)
