# Selo build. `make` builds build/selo; `make check` runs every test twice
# (plain and under ASan+UBSan); `make run` starts the service on embedded
# defaults; `make bench` prints performance figures.
# BUILD selects the build directory, so several builds can coexist.
#
# Packages (scripts/install-deps.sh): `make` / `make build` never call
# apt-get and never need root; when a build dependency is missing they name
# it and the command that installs it, and fail. `make run` installs what
# building and running need; `make check`, `check-plain`, `bench`, `demo`
# and `fuzz` install the test peers too (as root, or say what to run).

BUILD    ?= build
PREFIX   ?= /usr/local
DATA     ?= $(CURDIR)/var
CC       ?= gcc
PKGS      = libssl libcrypto sqlite3 jansson libmicrohttpd libesmtp-1.0 opendkim libcurl inih \
            cairo pangocairo libqrencode zlib libsystemd libarchive libpq
CPPFLAGS += -Iinclude -I$(BUILD)/gen -D_GNU_SOURCE
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c17 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2 -pthread
SANFLAGS  = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ifeq ($(SAN),1)
CFLAGS   += $(SANFLAGS) -O1
LDFLAGS  += $(SANFLAGS)
endif

DEPS_OK  := $(shell pkg-config --exists $(PKGS) 2>/dev/null && echo yes)
ifeq ($(DEPS_OK),yes)
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))
endif
CPPFLAGS += $(PKG_CFLAGS)
LDLIBS   += $(PKG_LIBS) -lresolv -lpthread -lm

LIB_SRC  := $(sort $(wildcard src/*.c))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
GEN_SRC  := $(BUILD)/gen/templates_embed.c
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/templates_embed.o
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TEMPLATE_FILES := $(sort $(wildcard templates/*/*))
# The verification page (src/web/verify/), embedded like the templates.
WEB_FILES := $(sort $(wildcard src/web/*/*))
LIB_OBJ  += $(BUILD)/gen/web_embed.o

.PHONY: print-pkgs all deps deps-test build build-deps-ok run check check-plain unit bench clean install \
	uninstall fuzz demo FORCE

# `make` builds only: no package is installed here (see build-deps-ok).
all: build
# The pkg-config names of the libraries (scripts/fuzz.sh builds with them).
print-pkgs:
	@echo $(PKGS)
# The targets that install first (apt-get, as root) run make again after, so
# that pkg-config sees the freshly installed libraries.
deps:
	@./scripts/install-deps.sh build
deps-test:
	@./scripts/install-deps.sh test
build: $(BUILD)/selo

# Every compile waits for this check: with a library's headers missing, say
# which packages and how to install them, instead of a compiler error.
build-deps-ok:
ifneq ($(DEPS_OK),yes)
	@missing=$$(./scripts/install-deps.sh --check build); \
	echo "selo: cannot build: missing build dependencies:$${missing:- (pkg-config finds no $(PKGS))}" >&2; \
	echo "selo: install them with: sudo scripts/install-deps.sh build" >&2; \
	exit 2
endif

# The version `selo --version` reports, from git describe (scripts/version.sh);
# the header is rewritten only when the version changes.
$(BUILD)/gen/version.h: FORCE
	@./scripts/version.sh $@
$(BUILD)/src/cli/version.o $(BUILD)/src/backup.o: $(BUILD)/gen/version.h
FORCE:

$(BUILD)/selo: $(CLI_OBJ) $(BUILD)/libselo.a
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libselo.a $(LDLIBS)

$(BUILD)/libselo.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/%.o: %.c | build-deps-ok
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/gen/templates_embed.c: scripts/embed-templates.sh $(TEMPLATE_FILES)
	@mkdir -p $(dir $@)
	./scripts/embed-templates.sh templates > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/templates_embed.o: $(BUILD)/gen/templates_embed.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/gen/web_embed.c: scripts/embed-web.sh $(WEB_FILES)
	@mkdir -p $(dir $@)
	./scripts/embed-web.sh src/web > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/web_embed.o: $(BUILD)/gen/web_embed.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(wildcard tests/unit/t*.h) $(BUILD)/libselo.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(BUILD)/libselo.a $(LDLIBS)

# test_x_onpg.c #includes test_x.c (tests/unit/t_store.h): rebuild it with it.
$(filter %_onpg,$(UNIT_BIN)): $(BUILD)/tests/%_onpg: tests/unit/%.c

unit: $(BUILD)/selo $(UNIT_BIN)

$(BUILD)/bench/ledger_bench: scripts/bench/ledger_bench.c $(BUILD)/libselo.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libselo.a $(LDLIBS)

# One runner for unit and integration tests: the plain build, then the same
# suite on an ASan+UBSan build. T=pattern limits the tests run.
# The builds use every core (make -j): two builds of everything, each unit
# test program linked against the whole library, are a third of the time.
check: deps-test
	@$(MAKE) --no-print-directory -j$$(nproc) BUILD=build unit
	@$(MAKE) --no-print-directory -j$$(nproc) BUILD=build-san SAN=1 unit
	@tests/run build build-san

# The plain build only (faster, for development).
check-plain: deps-test
	@$(MAKE) --no-print-directory -j$$(nproc) BUILD=build unit
	@tests/run build

# DOMAIN (optional) is the mail domain the first run's `selo init` is given.
run: deps
	@$(MAKE) --no-print-directory build
	@test -f "$(DATA)/selo.conf" || $(BUILD)/selo init --data "$(DATA)" $(if $(DOMAIN),--domain "$(DOMAIN)")
	$(BUILD)/selo serve --data "$(DATA)"

bench: deps-test
	@$(MAKE) --no-print-directory build $(BUILD)/bench/ledger_bench
	@scripts/bench.sh $(BUILD)

# The whole loop locally: serve, send, play the recipient, receipt, verify.
demo: deps-test
	@$(MAKE) --no-print-directory build
	@/usr/bin/python3 scripts/demo.py $(BUILD)

fuzz: deps-test
	@scripts/fuzz.sh

# `make install` builds (no apt: run `make deps` or scripts/install-deps.sh
# first on a bare machine) and copies the binary, the man pages, the systemd
# unit (ExecStart pointing at $(BINDIR)) and the example configuration; see
# docs/install.md. DESTDIR stages the tree for a package; `make uninstall`
# (same DESTDIR and PREFIX) removes exactly INSTALLED.
BINDIR    ?= $(PREFIX)/bin
MANDIR    ?= $(PREFIX)/share/man
UNITDIR   ?= $(PREFIX)/lib/systemd/system
DOCDIR    ?= $(PREFIX)/share/doc/selo
INSTALLED  = $(BINDIR)/selo $(MANDIR)/man1/selo.1 $(MANDIR)/man5/selo.conf.5 \
             $(UNITDIR)/selo.service $(DOCDIR)/selo.conf.example

install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)
	install -m 0755 $(BUILD)/selo $(DESTDIR)$(BINDIR)/selo
	install -m 0644 man/selo.1 $(DESTDIR)$(MANDIR)/man1/selo.1
	install -m 0644 man/selo.conf.5 $(DESTDIR)$(MANDIR)/man5/selo.conf.5
	sed 's|@BINDIR@|$(BINDIR)|g' dist/selo.service.in > $(DESTDIR)$(UNITDIR)/selo.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/selo.service.tmp
	mv $(DESTDIR)$(UNITDIR)/selo.service.tmp $(DESTDIR)$(UNITDIR)/selo.service
	install -m 0644 dist/selo.conf $(DESTDIR)$(DOCDIR)/selo.conf.example

# Removes the files, then the directories install made only if now empty.
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true

clean:
	rm -rf build build-* demo-out tests/out

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
