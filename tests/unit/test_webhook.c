/* test_webhook.c: the pure parts of webhooks: the address policy over every
 * special range (netcheck_public, on addresses built in memory: no socket is
 * opened), the v1 signature against the Standard Webhooks test vector, the
 * retry schedule (at least 3 days, then give up) and the URL check on
 * literals and /etc/hosts names (no DNS query leaves the machine). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include "selo/buf.h"
#include "selo/codec.h"
#include "selo/netcheck.h"
#include "selo/webhook.h"
#include "t.h"

static int public_text(const char *addr)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
			return -1;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1)
			return -1;
	}
	return netcheck_public((struct sockaddr *)&ss);
}

TEST(refuses_every_special_ipv4_range)
{
	static const char *const deny[] = {
		"127.0.0.1", "127.255.255.254", "10.0.0.0", "10.255.255.255", "172.16.0.1",
		"172.31.255.255", "192.168.0.1", "192.168.255.255", "169.254.0.1", "169.254.169.254",
		"100.64.0.1", "100.127.255.255", "0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.255",
		"240.0.0.1", "255.255.255.255", "192.0.0.8", "192.0.2.1", "198.51.100.7", "203.0.113.9",
		"198.18.0.1", "198.19.255.255", "192.88.99.1"};
	for (size_t i = 0; i < sizeof(deny) / sizeof(deny[0]); i++) {
		int r = public_text(deny[i]);
		if (r != 0)
			fprintf(stderr, "  %s: %d\n", deny[i], r);
		CHECK(r == 0);
	}
}

TEST(refuses_every_special_ipv6_range)
{
	static const char *const deny[] = {
		"::1", "::", "fc00::1", "fd12:3456::1", "fdff:ffff::1", "fe80::1", "febf::1",
		"fec0::1", "ff02::1", "ff0e::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1",
		"::ffff:169.254.169.254", "::ffff:192.168.1.1", "::10.0.0.1", "::8.8.8.8",
		"64:ff9b::a00:1", "64:ff9b::7f00:1", "64:ff9b:1::1", "2002:a00:1::1", "2002:7f00:1::",
		"2001:db8::1", "2001::1", "100::1",
		/* SIIT's IPv4-translated ::ffff:0:0:0/96, whatever it carries */
		"::ffff:0:7f00:1", "::ffff:0:a00:1", "::ffff:0:808:808",
		/* the rest of the IANA special-purpose registry */
		"64:ff9b:1:ffff::1", "100:0:0:1::1", "2001:2::1", "2001:20::1", "2001:4:112::1",
		"2001:1ff:ffff::1", "3fff::1", "3fff:fff::1", "5f00::1", "2002:c058:6301::1",
		/* outside global unicast 2000::/3: reserved space is never a target */
		"::2", "1fff::1", "4000::1", "fbff::1", "fe00::1", "64:ff9b::1:0:0:1"};
	for (size_t i = 0; i < sizeof(deny) / sizeof(deny[0]); i++) {
		int r = public_text(deny[i]);
		if (r != 0)
			fprintf(stderr, "  %s: %d\n", deny[i], r);
		CHECK(r == 0);
	}
}

TEST(allows_public_addresses)
{
	static const char *const allow[] = {
		"8.8.8.8", "1.1.1.1", "93.184.216.34", "172.15.255.255", "172.32.0.1", "100.63.255.255",
		"100.128.0.1", "169.253.0.1", "192.167.1.1", "11.0.0.1", "223.255.255.255",
		"2606:4700:4700::1111", "2001:4860:4860::8888", "2a00:1450::1", "::ffff:8.8.8.8",
		"64:ff9b::808:808", "2002:808:808::1", "2001:200::1", "2620:4f:8000::1",
		"3fff:1000::1", "3ffe::1", "2000::1", "3fff:ffff::1"};
	for (size_t i = 0; i < sizeof(allow) / sizeof(allow[0]); i++) {
		int r = public_text(allow[i]);
		if (r != 1)
			fprintf(stderr, "  %s: %d\n", allow[i], r);
		CHECK(r == 1);
	}
}

TEST(other_families_are_refused)
{
	struct sockaddr sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNIX;
	CHECK(netcheck_public(&sa) == 0);
	CHECK(netcheck_public(NULL) == 0);
}

/* The vector the Standard Webhooks libraries test against. */
TEST(signature_matches_the_standard_webhooks_vector)
{
	const char *secret_b64 = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
	uint8_t secret[64];
	ssize_t n = base64_decode(secret_b64, strlen(secret_b64), secret, sizeof(secret));
	CHECK(n == 24);
	const char *body = "{\"test\": 2432232314}";
	struct buf sig = BUF_INIT;
	webhook_sign_v1(secret, (size_t)n, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body,
			strlen(body), &sig);
	CHECK_STR(buf_str(&sig), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	/* One byte more of body, or another timestamp: another signature. */
	buf_reset(&sig);
	webhook_sign_v1(secret, (size_t)n, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body,
			strlen(body), &sig);
	CHECK(strcmp(buf_str(&sig), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=") != 0);
	buf_free(&sig);
}

TEST(retry_schedule_lasts_more_than_three_days_then_gives_up)
{
	CHECK(webhook_retry_delay_ms(0, 1) == -1);
	CHECK(webhook_retry_delay_ms(1, 1) == 5000);
	CHECK(webhook_retry_delay_ms(2, 1) == 300000);
	CHECK(webhook_retry_delay_ms(3, 1) == 1800000);
	CHECK(webhook_retry_delay_ms(4, 1) == 7200000);
	CHECK(webhook_retry_delay_ms(5, 1) == 18000000);
	int64_t total = 0;
	int k = 1;
	for (; webhook_retry_delay_ms(k, 1) > 0; k++)
		total += webhook_retry_delay_ms(k, 1);
	CHECK(k == 13); /* 12 retries, 13 attempts: the 13th failure gives up */
	CHECK(total >= 72LL * 3600 * 1000);
	CHECK(total == (5 + 300 + 1800 + 7200 + 18000 + 7 * 36000LL) * 1000); /* 77 h 35 min 5 s */
	/* The test speed-up divides every delay, never to zero. */
	CHECK(webhook_retry_delay_ms(1, 1000) == 5);
	CHECK(webhook_retry_delay_ms(1, 10000000) == 1);
}

static int url_field_refused(const char *url, int allow_private)
{
	struct selo_err e;
	err_clear(&e);
	int r = webhook_url_check(url, allow_private, &e);
	return r != 0 && e.status == 422 && e.nfields == 1 && !strcmp(e.fields[0].field, "url");
}

TEST(url_check_refuses_private_targets_and_bad_forms)
{
	static const char *const bad[] = {
		"http://127.0.0.1:8080/hook", "http://localhost/x", "http://[::1]/",
		"http://[::ffff:10.0.0.1]/", "http://[::ffff:127.0.0.1]:81/", "http://10.1.2.3/",
		"http://169.254.169.254/latest/meta-data", "http://0.0.0.0/", "http://[fe80::1]/",
		"http://2130706433/", "http://0x7f.1/", "ftp://93.184.216.34/", "file:///etc/passwd",
		"gopher://93.184.216.34/", "http://user:pw@93.184.216.34/", "http://93.184.216.34/#f",
		"93.184.216.34/hook", "http:// 93.184.216.34/", "", "http://[fe80::1%25eth0]/"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = url_field_refused(bad[i], 0);
		if (!r)
			fprintf(stderr, "  accepted: %s\n", bad[i]);
		CHECK(r);
	}
	CHECK(!url_field_refused("http://93.184.216.34/hook", 0));
	CHECK(!url_field_refused("https://[2606:4700:4700::1111]:8443/a?b=c", 0));
	/* allow_private: loopback is fine (tests), the form rules still hold. */
	CHECK(!url_field_refused("http://127.0.0.1:8080/hook", 1));
	CHECK(url_field_refused("ftp://127.0.0.1/", 1));
	char longurl[2200];
	snprintf(longurl, sizeof(longurl), "http://93.184.216.34/%02090d", 0);
	CHECK(url_field_refused(longurl, 0));
}
