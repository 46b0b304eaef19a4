/* test_schedule_onpg.c: test_schedule.c's tests on PostgreSQL: each test's store
 * is a fresh database of one private cluster (tests/unit/t_store.h says
 * how, which tests are SQLite's only, and why a test that meets an op still
 * answering 501 is reported as skipped). */
#define T_STORE_PG 1
#include "test_schedule.c"
