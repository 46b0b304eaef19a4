/* t.h: the unit-test harness. Each tests/unit/test_*.c is one program;
 * TEST(name) registers a function, CHECK() records a failure with file and
 * line and goes on. main() runs every test (or those whose name contains
 * argv[1]) and ends with the line "N passed, N failed, N skipped"; exit 1
 * if any failed. SKIP(why) ends a test that cannot run here: it counts as
 * skipped, never as passed.
 * Tests may read files relative to the repository root (the cwd of make). */
#ifndef SELO_T_H
#define SELO_T_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*t_fn)(void);
struct t_case { const char *name; t_fn fn; };
static struct t_case t_cases[512];
static int t_ncases;
static int t_failed_now;
static int t_skipped_now;

#define SKIP(why)                                                            \
	do {                                                                     \
		fprintf(stderr, "  skipped: %s\n", why);                            \
		t_skipped_now = 1;                                                   \
		return;                                                              \
	} while (0)

#define TEST(tn)                                                     \
	static void t_##tn(void);                                        \
	__attribute__((constructor)) static void t_reg_##tn(void) {      \
		t_cases[t_ncases].name = #tn;                                \
		t_cases[t_ncases++].fn = t_##tn;                             \
	}                                                                \
	static void t_##tn(void)

#define CHECK(cond)                                                          \
	do {                                                                     \
		if (!(cond)) {                                                       \
			fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__,         \
				__LINE__, #cond);                                            \
			t_failed_now = 1;                                                \
		}                                                                    \
	} while (0)

#define CHECK_STR(a, b)                                                      \
	do {                                                                     \
		const char *t_a = (a), *t_b = (b);                                   \
		if (!t_a || !t_b || strcmp(t_a, t_b) != 0) {                        \
			fprintf(stderr, "  %s:%d: \"%s\" != \"%s\"\n", __FILE__,         \
				__LINE__, t_a ? t_a : "(null)", t_b ? t_b : "(null)");       \
			t_failed_now = 1;                                                \
		}                                                                    \
	} while (0)

int main(int argc, char **argv)
{
	int passed = 0, failed = 0, skipped = 0;
	for (int i = 0; i < t_ncases; i++) {
		if (argc > 1 && !strstr(t_cases[i].name, argv[1]))
			continue;
		t_failed_now = t_skipped_now = 0;
		t_cases[i].fn();
		printf("%s %s\n", t_failed_now ? "FAIL" : t_skipped_now ? "skip" : "ok  ",
		       t_cases[i].name);
		fflush(stdout);
		if (t_failed_now)
			failed++;
		else if (t_skipped_now)
			skipped++;
		else
			passed++;
	}
	printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
	return failed ? 1 : 0;
}
#endif
