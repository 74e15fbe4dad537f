# imagepipe: every target that needs tools depends on `setup`, which installs the Debian
# packages and the venv on first use and is a no-op afterwards (stamp file).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp
RECIPE ?= httpd
PYTEST_ARGS ?= --durations=15
BENCH ?=  # e.g. make bench BENCH=convert (default: every benchmarks/bench_*.py)
export DEBIAN_FRONTEND := noninteractive

APT_PACKAGES := qemu-utils qemu-system-x86 qemu-system-data libguestfs-tools python3-guestfs \
	linux-image-amd64 extlinux syslinux-common mmdebstrap cloud-init busybox-static \
	python3-venv python3-dev gcc libxml2-dev libcurl4-openssl-dev libssl-dev fdisk e2fsprogs \
	xz-utils zstd bzip2 curl openssl genisoimage isolinux \
	ovmf dosfstools gpg apt-utils dpkg-dev redis-server

# The man page goes where `man imagepipe` finds it: /usr/local/share/man as root, else ~/.local.
MANDIR ?= $(if $(filter 0,$(shell id -u)),/usr/local/share/man/man1,$(HOME)/.local/share/man/man1)

.PHONY: setup image test test-fast bench lint clean man

setup: $(STAMP) $(MANDIR)/imagepipe.1

$(MANDIR)/imagepipe.1: imagepipe.1
	install -D -m 0644 $< $@

# Regenerate imagepipe.1 from the click commands (a test checks the committed page is current).
man: $(STAMP)
	$(PY) -m imagepipe.cli.manpage > imagepipe.1

$(STAMP): pyproject.toml Makefile
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "setup: installing Debian packages:" $$missing; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -q && $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@[ -x $(PY) ] || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,farm,sbom]'
	@touch $(STAMP)

image: setup
	$(VENV)/bin/imagepipe build recipes/$(RECIPE).yaml

test: setup
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# The laptop selection (no qemu, libguestfs, oVirt daemon or slow test), run with those tools
# hidden so a test that needs one without its marker fails here (tests/without_tools/run.py).
test-fast: setup
	$(PY) tests/without_tools/run.py $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/run.py $(BENCH)

lint: setup
	$(VENV)/bin/ruff check imagepipe tests benchmarks
	$(VENV)/bin/mypy imagepipe

clean:
	rm -rf $(VENV) build *.egg-info
