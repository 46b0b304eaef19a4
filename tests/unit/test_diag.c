/* test_diag.c: diag's two formats (text, json: escaping of quotes, control
 * characters and invalid UTF-8, ids and fields, truncation that keeps the
 * object whole), levels, diag_scrub, and the access log's path hiding. */
#include <fcntl.h>
#include <jansson.h>
#include <unistd.h>
#include "t.h"
#include "t_stderr.h"
#include "selo/accesslog.h"
#include "selo/diag.h"

static void write_nasty(void *unused)
{
	(void)unused;
	struct diag_field f[] = {{.key = "peer", .str = "mx \"1\"\n"},
				 {.key = "code", .num = 451},
				 {.key = "duration_ms", .number = "1.250"},
				 {.key = "hidden_in_text", .str = "x", .json_only = 1}};
	struct diag_ids ids = {.notice = "01ABC", .attempt = 2, .webhook = "wh_1",
			       .delivery = "msg_7", .fields = f, .nfields = 4};
	diag_with(DIAG_INFO, &ids, "quote \" backslash \\ newline \n tab \t bad \xff\xfe utf8 ação");
}

TEST(diag_json_escapes_and_carries_ids)
{
	CHECK(diag_configure("info", "json") == 0);
	char *out = stderr_of(write_nasty, NULL);
	CHECK(out && strchr(out, '\n') == out + strlen(out) - 1); /* one line */
	json_error_t je;
	json_t *o = json_loads(out, 0, &je);
	CHECK(o != NULL);
	if (o) {
		CHECK_STR(json_string_value(json_object_get(o, "level")), "info");
		CHECK_STR(json_string_value(json_object_get(o, "module")), "test_diag");
		CHECK_STR(json_string_value(json_object_get(o, "where")), "write_nasty");
		CHECK_STR(json_string_value(json_object_get(o, "message")),
			  "quote \" backslash \\ newline \n tab \t bad \xef\xbf\xbd\xef\xbf\xbd utf8 ação");
		CHECK_STR(json_string_value(json_object_get(o, "notice")), "01ABC");
		CHECK(json_integer_value(json_object_get(o, "attempt")) == 2);
		CHECK_STR(json_string_value(json_object_get(o, "webhook")), "wh_1");
		CHECK_STR(json_string_value(json_object_get(o, "delivery")), "msg_7");
		CHECK_STR(json_string_value(json_object_get(o, "peer")), "mx \"1\"\n");
		CHECK(json_integer_value(json_object_get(o, "code")) == 451);
		CHECK(json_real_value(json_object_get(o, "duration_ms")) == 1.25);
		CHECK_STR(json_string_value(json_object_get(o, "hidden_in_text")), "x");
		const char *t = json_string_value(json_object_get(o, "time"));
		CHECK(t && strlen(t) == 24 && t[23] == 'Z');
	}
	json_decref(o);
	free(out);
	diag_configure("info", "text");
}

TEST(diag_text_keeps_one_line)
{
	CHECK(diag_configure("info", "text") == 0);
	char *out = stderr_of(write_nasty, NULL);
	CHECK(out && strchr(out, '\n') == out + strlen(out) - 1);
	CHECK(out && strstr(out, " info write_nasty: quote \" backslash"));
	CHECK(out && strstr(out, " notice=01ABC attempt=2 webhook=wh_1 delivery=msg_7 peer=mx \"1\"  "
			    "code=451 duration_ms=1.250\n"));
	CHECK(out && !strstr(out, "hidden_in_text"));
	free(out);
}

static void write_long(void *unused)
{
	(void)unused;
	char big[5000];
	memset(big, '"', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	diag_with(DIAG_WARN, &(struct diag_ids){.notice = "01ABC"}, "%s", big);
}

TEST(diag_json_cut_stays_an_object)
{
	diag_configure("info", "json");
	char *out = stderr_of(write_long, NULL);
	json_t *o = out ? json_loads(out, 0, NULL) : NULL;
	CHECK(o != NULL);
	CHECK(out && strlen(out) <= 2048);
	json_decref(o);
	free(out);
	diag_configure("info", "text");
}

static void write_levels(void *unused)
{
	(void)unused;
	diag_debug("debug line");
	diag_info("info line");
	diag_warn("warn line");
	diag_error("error line");
}

TEST(diag_levels)
{
	CHECK(diag_configure("warn", "text") == 0);
	char *out = stderr_of(write_levels, NULL);
	CHECK(out && !strstr(out, "debug line") && !strstr(out, "info line"));
	CHECK(out && strstr(out, "warn line") && strstr(out, "error line"));
	free(out);
	CHECK(diag_configure("verbose", "text") == -1);
	CHECK(diag_configure("info", "xml") == -1);
	CHECK(!diag_enabled(DIAG_INFO)); /* a refused value changes nothing */
	diag_configure("info", "text");
	CHECK(diag_enabled(DIAG_INFO) && !diag_enabled(DIAG_DEBUG));
}

TEST(diag_scrub_hides_addresses)
{
	char out[128];
	const char *in = "550 5.1.1 <Ana.Silva@Example.com>: user unknown\r\n550 (bob@x.example)";
	CHECK_STR(diag_scrub(in, strlen(in), out, sizeof(out)),
		  "550 5.1.1 <[address]>: user unknown  550 ([address])");
	CHECK_STR(diag_scrub("a@b", 3, out, 5), "[add");
	CHECK_STR(diag_scrub("plain text", 10, out, sizeof(out)), "plain text");
}

TEST(accesslog_paths_hide_tokens_and_addresses)
{
	char p[256];
	accesslog_path(ACCESSLOG_TRACKER, "/o/AbCdEf0123456789_-xyz.gif", p, sizeof(p));
	CHECK_STR(p, "/o/:token.gif");
	accesslog_path(ACCESSLOG_TRACKER, "/c/AbCdEf0123456789", p, sizeof(p));
	CHECK_STR(p, "/c/:token");
	accesslog_path(ACCESSLOG_TRACKER, "/r/AbCdEf0123456789", p, sizeof(p));
	CHECK_STR(p, "/r/:token");
	accesslog_path(ACCESSLOG_TRACKER, "/log/tile/0/x001/234", p, sizeof(p));
	CHECK_STR(p, "/log/tile/0/x001/234");
	accesslog_path(ACCESSLOG_API, "/v1/suppressions/ana@example.com", p, sizeof(p));
	CHECK_STR(p, "/v1/suppressions/:address");
	accesslog_path(ACCESSLOG_API, "/v1/suppressions/ana%40example.com", p, sizeof(p));
	CHECK_STR(p, "/v1/suppressions/:address");
	accesslog_path(ACCESSLOG_API, "/v1/notices/01M996T675AMXGC8GXQZMJRBEY", p, sizeof(p));
	CHECK_STR(p, "/v1/notices/01M996T675AMXGC8GXQZMJRBEY");
	char longseg[200];
	memset(longseg, 'a', sizeof(longseg) - 1);
	longseg[0] = '/';
	longseg[sizeof(longseg) - 1] = '\0';
	accesslog_path(ACCESSLOG_API, longseg, p, sizeof(p));
	CHECK_STR(p, "/:long");
	accesslog_path(ACCESSLOG_API, "/x", p, 2);
	CHECK_STR(p, "/");
}
