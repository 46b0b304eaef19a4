/* test_baseurl.c: the start warning's two judgements (baseurl.h): which
 * track.base_url hosts recipients cannot reach, and which transports send
 * mail out; and that the warning fires only when both hold. */
#include "selo/baseurl.h"
#include "t.h"

static const char *kind(const char *url)
{
	char host[256];
	return baseurl_local_kind(url, host, sizeof(host));
}

TEST(local_hosts)
{
	CHECK_STR(kind("http://127.0.0.1:8481"), "a loopback address");
	CHECK_STR(kind("http://127.9.9.9"), "a loopback address");
	CHECK_STR(kind("http://localhost:8481/"), "a loopback address");
	CHECK_STR(kind("http://LOCALHOST"), "a loopback address");
	CHECK_STR(kind("http://selo.localhost"), "a loopback address");
	CHECK_STR(kind("http://[::1]:8481"), "a loopback address");
	CHECK_STR(kind("http://[::ffff:127.0.0.1]"), "a loopback address");
	CHECK_STR(kind("https://10.1.2.3"), "a private address");
	CHECK_STR(kind("https://172.16.0.1"), "a private address");
	CHECK_STR(kind("https://172.31.255.255"), "a private address");
	CHECK_STR(kind("https://192.168.0.10/t"), "a private address");
	CHECK_STR(kind("https://[fd00::1]"), "a private address");
	CHECK_STR(kind("https://169.254.1.1"), "a link-local address");
	CHECK_STR(kind("https://[fe80::1]"), "a link-local address");
	CHECK_STR(kind("https://100.64.0.1"), "a non-public address");
	CHECK_STR(kind("https://0.0.0.0"), "a non-public address");
	CHECK_STR(kind("https://tracker"), "a local name");
	CHECK_STR(kind("https://selo.internal"), "a local name");
	CHECK_STR(kind("https://printer.local"), "a local name");
}

TEST(public_hosts)
{
	CHECK(kind("https://track.cobranca.example.com.br") == NULL);
	CHECK(kind("https://172.32.0.1") == NULL);
	CHECK(kind("https://8.8.8.8") == NULL);
	CHECK(kind("https://[2a00:1450::1]") == NULL);
	CHECK(kind("not a url") == NULL);
	CHECK(kind("") == NULL);
	char host[256];
	CHECK_STR(baseurl_local_kind("http://127.0.0.1:8481/x", host, sizeof(host)),
		  "a loopback address");
	CHECK_STR(host, "127.0.0.1");
}

static struct selo_config cfg_with(enum smtp_mode mode, const char *relay, const char *base)
{
	struct selo_config c;
	config_defaults(&c, "/tmp/selo-test");
	c.smtp_mode = mode;
	snprintf(c.smtp_relay, sizeof(c.smtp_relay), "%s", relay);
	snprintf(c.track_base_url, sizeof(c.track_base_url), "%s", base);
	return c;
}

TEST(mail_leaves)
{
	char why[300];
	struct selo_config c = cfg_with(SMTP_MAILDIR, "", "http://127.0.0.1:8481");
	CHECK(baseurl_mail_leaves(&c, why, sizeof(why)) == NULL);
	c = cfg_with(SMTP_RELAY, "127.0.0.1:2525", "http://127.0.0.1:8481");
	CHECK(baseurl_mail_leaves(&c, why, sizeof(why)) == NULL);
	c = cfg_with(SMTP_RELAY, "localhost:25", "http://127.0.0.1:8481");
	CHECK(baseurl_mail_leaves(&c, why, sizeof(why)) == NULL);
	c = cfg_with(SMTP_RELAY, "[::1]:25", "http://127.0.0.1:8481");
	CHECK(baseurl_mail_leaves(&c, why, sizeof(why)) == NULL);
	c = cfg_with(SMTP_RELAY, "smtp.example.net:587", "http://127.0.0.1:8481");
	CHECK(baseurl_mail_leaves(&c, why, sizeof(why)) != NULL);
	CHECK(strstr(why, "smtp.example.net") != NULL);
	c = cfg_with(SMTP_RELAY, "10.0.0.5:25", "http://127.0.0.1:8481");
	CHECK(baseurl_mail_leaves(&c, why, sizeof(why)) != NULL);
	c = cfg_with(SMTP_MX, "", "http://127.0.0.1:8481");
	CHECK(baseurl_mail_leaves(&c, why, sizeof(why)) != NULL);
}

TEST(warns_only_when_both)
{
	struct selo_config c = cfg_with(SMTP_MX, "", "http://127.0.0.1:8481");
	CHECK(baseurl_warn(&c) == 1);
	c = cfg_with(SMTP_MX, "", "https://track.example.com.br");
	CHECK(baseurl_warn(&c) == 0);
	c = cfg_with(SMTP_MAILDIR, "", "http://127.0.0.1:8481");
	CHECK(baseurl_warn(&c) == 0);
	c = cfg_with(SMTP_RELAY, "smtp.example.net:587", "http://192.168.1.2:8481");
	CHECK(baseurl_warn(&c) == 1);
}
