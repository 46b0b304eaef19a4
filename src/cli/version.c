/* version.c: `selo version` and `selo --version`: prints the version this
 * binary was built from (SELO_VERSION, generated at build time into
 * $(BUILD)/gen/version.h by scripts/version.sh from `git describe`, or the
 * release's VERSION file) on stdout, as "selo VERSION". */
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "version.h"

int cmd_version(int argc, char **argv)
{
	if (argc == 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
		puts("usage: selo version   (or selo --version): prints \"selo VERSION\"");
		return EXIT_OK;
	}
	if (argc > 0) {
		fprintf(stderr, "selo version: takes no arguments\n");
		return EXIT_USAGE;
	}
	printf("selo %s\n", SELO_VERSION);
	return EXIT_OK;
}
