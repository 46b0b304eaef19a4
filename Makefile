# Selo build. `make` builds build/selo; `make check` runs every test twice
# (plain and under ASan+UBSan); `make run` starts the service on embedded
# defaults; `make bench` prints performance figures.
# BUILD selects the build directory, so several builds can coexist.

BUILD    ?= build
PREFIX   ?= /usr/local
DATA     ?= $(CURDIR)/var
CC       ?= gcc
PKGS      = libssl libcrypto sqlite3 jansson libmicrohttpd libesmtp-1.0 opendkim libcurl inih \
            cairo pangocairo libqrencode zlib libarchive
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

.PHONY: all deps build run check check-plain unit bench clean install fuzz demo

# Public targets first install missing Debian packages (apt-get, as root), then
# run make again so pkg-config sees the freshly installed libraries.
all: deps
	@$(MAKE) --no-print-directory build
deps:
	@./scripts/install-deps.sh
build: $(BUILD)/selo

$(BUILD)/selo: $(CLI_OBJ) $(BUILD)/libselo.a
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libselo.a $(LDLIBS)

$(BUILD)/libselo.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/%.o: %.c
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

$(BUILD)/tests/%: tests/unit/%.c tests/unit/t.h tests/unit/t_run.h $(BUILD)/libselo.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(BUILD)/libselo.a $(LDLIBS)

unit: $(BUILD)/selo $(UNIT_BIN)

$(BUILD)/bench/ledger_bench: scripts/bench/ledger_bench.c $(BUILD)/libselo.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libselo.a $(LDLIBS)

# One runner for unit and integration tests: the plain build, then the same
# suite on an ASan+UBSan build. T=pattern limits the tests run.
check: deps
	@$(MAKE) --no-print-directory BUILD=build unit
	@$(MAKE) --no-print-directory BUILD=build-san SAN=1 unit
	@tests/run build build-san

# The plain build only (faster, for development).
check-plain: deps
	@$(MAKE) --no-print-directory BUILD=build unit
	@tests/run build

run: deps
	@$(MAKE) --no-print-directory build
	@test -f "$(DATA)/selo.conf" || $(BUILD)/selo init --data "$(DATA)"
	$(BUILD)/selo serve --data "$(DATA)"

bench: deps
	@$(MAKE) --no-print-directory build $(BUILD)/bench/ledger_bench
	@scripts/bench.sh $(BUILD)

# The whole loop locally: serve, send, play the recipient, receipt, verify.
demo: deps
	@$(MAKE) --no-print-directory build
	@/usr/bin/python3 scripts/demo.py $(BUILD)

fuzz: deps
	@scripts/fuzz.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BUILD)/selo $(DESTDIR)$(PREFIX)/bin/selo

clean:
	rm -rf build build-* demo-out tests/out

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
