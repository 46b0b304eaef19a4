/* test_template.c: unit tests of the template module: the brl, data and url
 * filters, HTML escaping, loading (embedded and from a directory), load
 * errors for malformed templates, template_check's field errors and the
 * rendering of every shipped template. Temporary directories go under /tmp
 * and are removed; a failure is reported by CHECK and the next test runs. */
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "selo/buf.h"
#include "selo/err.h"
#include "selo/template.h"
#include "t.h"

/* ------------------------------------------------------------- helpers */

/* filter output, or "ERR" when the filter refuses the value */
static char out_buf[1024];
static const char *brl(const char *v)
{
	struct buf b = BUF_INIT;
	int rc = filter_brl(v, &b);
	snprintf(out_buf, sizeof(out_buf), "%s", rc == 0 ? buf_str(&b) : "ERR");
	buf_free(&b);
	return out_buf;
}

static const char *data(const char *v)
{
	struct buf b = BUF_INIT;
	int rc = filter_data(v, &b);
	snprintf(out_buf, sizeof(out_buf), "%s", rc == 0 ? buf_str(&b) : "ERR");
	buf_free(&b);
	return out_buf;
}

static const char *url(const char *v)
{
	struct buf b = BUF_INIT;
	int rc = filter_url(v, &b);
	snprintf(out_buf, sizeof(out_buf), "%s", rc == 0 ? buf_str(&b) : "ERR");
	buf_free(&b);
	return out_buf;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void rm_rf(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void write_file(const char *dir, const char *name, const char *file, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/%s/%s", dir, name, file);
	FILE *f = fopen(path, "wb");
	if (!f)
		return;
	fputs(text, f);
	fclose(f);
}

struct tpl_files {
	const char *ini, *subject, *text, *html; /* NULL: the file is not written */
};

static void write_template(const char *dir, const char *name, const struct tpl_files *f)
{
	if (f->ini)
		write_file(dir, name, "template.ini", f->ini);
	if (f->subject)
		write_file(dir, name, "subject.txt", f->subject);
	if (f->text)
		write_file(dir, name, "body.txt", f->text);
	if (f->html)
		write_file(dir, name, "body.html", f->html);
}

static char *make_dir(void)
{
	char tmpl[] = "/tmp/selo-template-XXXXXX";
	char *d = mkdtemp(tmpl);
	return d ? strdup(d) : NULL;
}

/* Loads a directory holding one template named "t" made of f; returns the
 * load result and leaves the error in err. */
static int load_one(const struct tpl_files *f, struct template_set **set, struct selo_err *err)
{
	char *dir = make_dir();
	if (!dir)
		return -2;
	write_template(dir, "t", f);
	err_clear(err);
	int rc = template_set_load(dir, set, err);
	rm_rf(dir);
	free(dir);
	return rc;
}

static const char *GOOD_INI = "[template]\nlanguage = pt-BR\nrequired = a\noptional = b\n";

/* A load of f must fail with a message holding every one of want[]. */
static int load_fails_with(const struct tpl_files *f, const char *want1, const char *want2)
{
	struct template_set *set = NULL;
	struct selo_err err;
	int rc = load_one(f, &set, &err);
	template_set_free(set);
	int ok = rc == -1 && set == NULL && err.status == 500 &&
		 strcmp(err.type, "template-invalid") == 0 && strstr(err.msg, "template t") &&
		 (!want1 || strstr(err.msg, want1)) && (!want2 || strstr(err.msg, want2));
	if (!ok)
		fprintf(stderr, "  load error was: rc=%d \"%s\"\n", rc, err.msg);
	return ok;
}

static const struct selo_err_field *field(const struct selo_err *e, const char *name)
{
	for (int i = 0; i < e->nfields; i++)
		if (strcmp(e->fields[i].field, name) == 0)
			return &e->fields[i];
	return NULL;
}

/* Field error of name holds want (NULL: any message). */
static int field_says(const struct selo_err *e, const char *name, const char *want)
{
	const struct selo_err_field *f = field(e, name);
	if (!f) {
		fprintf(stderr, "  no field error %s (have %d)\n", name, e->nfields);
		for (int i = 0; i < e->nfields; i++)
			fprintf(stderr, "    %s: %s\n", e->fields[i].field, e->fields[i].msg);
		return 0;
	}
	if (want && !strstr(f->msg, want)) {
		fprintf(stderr, "  %s: \"%s\" lacks \"%s\"\n", name, f->msg, want);
		return 0;
	}
	return 1;
}

static struct template_set *embedded(void)
{
	struct template_set *set = NULL;
	struct selo_err err;
	err_clear(&err);
	if (template_set_load(NULL, &set, &err) < 0)
		fprintf(stderr, "  embedded load failed: %s\n", err.msg);
	return set;
}

/* A sample value for each variable name the shipped templates use. */
static json_t *sample_value(const char *name)
{
	static const struct { const char *name, *value; } strs[] = {
		{"nome", "Maria d'Ávila & Filhos <teste>"},
		{"credor", "Ferreira & Cia. Ltda."},
		{"vencimento", "2026-12-01"},
		{"primeiro_vencimento", "2026-12-10"},
		{"validade_proposta", "2026-11-30"},
		{"descricao", "Mensalidade de novembro/2026"},
		{"documento", "Contrato nº 12.345"},
		{"linha_digitavel", "34191.79001 01043.510047 91020.150008 1 96610000123456"},
		{"link_pagamento", "https://pagar.example.com.br/b/123?x=1&y=2"},
		{"contato", "(11) 4000-1234, cobranca@example.com.br"},
		{"credor_documento", "12.345.678/0001-90"},
		{"credor_endereco", "Rua das Flores, 100, São Paulo - SP"},
		{"valor", "1234.56"},
		{"valor_total", "1300.00"},
	};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		if (strcmp(strs[i].name, name) == 0)
			return json_string(strs[i].value);
	if (strcmp(name, "valor_parcela") == 0)
		return json_real(108.335); /* a JSON number, rounded half up */
	if (strcmp(name, "parcelas") == 0)
		return json_integer(12);
	if (strcmp(name, "dias_atraso") == 0)
		return json_integer(15);
	if (strcmp(name, "prazo_dias") == 0)
		return json_integer(10);
	return json_string("x");
}

/* vars for t: every declared variable (all = 1) or only the required ones */
static json_t *sample_vars(const struct template *t, int all)
{
	const char *const *names;
	size_t nreq, n = template_vars(t, &names, &nreq);
	json_t *vars = json_object();
	for (size_t i = 0; i < (all ? n : nreq); i++)
		json_object_set_new(vars, names[i], sample_value(names[i]));
	return vars;
}

/* ------------------------------------------------------------ filters */

TEST(brl_strings)
{
	CHECK_STR(brl("0"), "R$ 0,00");
	CHECK_STR(brl("0.5"), "R$ 0,50");
	CHECK_STR(brl("0.05"), "R$ 0,05");
	CHECK_STR(brl("1"), "R$ 1,00");
	CHECK_STR(brl("999"), "R$ 999,00");
	CHECK_STR(brl("1000"), "R$ 1.000,00");
	CHECK_STR(brl("1234.56"), "R$ 1.234,56");
	CHECK_STR(brl("1234.5"), "R$ 1.234,50");
	CHECK_STR(brl("1234567.8"), "R$ 1.234.567,80");
	CHECK_STR(brl("100000"), "R$ 100.000,00");
	CHECK_STR(brl("-10"), "-R$ 10,00");
	CHECK_STR(brl("-1234.56"), "-R$ 1.234,56");
	CHECK_STR(brl("-0.00"), "R$ 0,00");
	CHECK_STR(brl("-0"), "R$ 0,00");
	CHECK_STR(brl("007.5"), "R$ 7,50");
	CHECK_STR(brl("123456789012345678901234567890.99"),
		  "R$ 123.456.789.012.345.678.901.234.567.890,99");
	/* the strings 0.1 + 0.2 are exact: no binary floating point */
	CHECK_STR(brl("0.30"), "R$ 0,30");
}

TEST(brl_rejects)
{
	const char *bad[] = {"1,2,3", "abc", "1e5", "", "-", "1.", ".5", "1.234", "1,50",
			     " 1", "1 ", "+1", "--1", "0x10", "1.2.3", "R$ 1", "1_000", "NaN",
			     "inf", "1.5e2", "١٢"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (strcmp(brl(bad[i]), "ERR") != 0) {
			fprintf(stderr, "  brl accepted \"%s\"\n", bad[i]);
			t_failed_now = 1;
		}
	}
}

TEST(data_filter)
{
	CHECK_STR(data("2026-12-01"), "01/12/2026");
	CHECK_STR(data("2024-02-29"), "29/02/2024");
	CHECK_STR(data("2000-02-29"), "29/02/2000");
	CHECK_STR(data("2026-01-31"), "31/01/2026");
	CHECK_STR(data("0001-01-01"), "01/01/0001");
	const char *bad[] = {"2026-02-29", "1900-02-29", "2026-04-31", "2026-13-01", "2026-00-10",
			     "2026-01-00", "0000-01-01", "2026-1-01", "2026-01-1",
			     "2026-01-01T00:00:00Z", "01/12/2026", "2026/12/01", "abc", "",
			     "20261201", "2026-12-01 ", " 2026-12-01", "2026-12-3a"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (strcmp(data(bad[i]), "ERR") != 0) {
			fprintf(stderr, "  data accepted \"%s\"\n", bad[i]);
			t_failed_now = 1;
		}
	}
}

TEST(url_filter)
{
	CHECK_STR(url("https://pagar.example.com/b/1?x=1&y=2#z"),
		  "https://pagar.example.com/b/1?x=1&y=2#z");
	CHECK_STR(url("HTTP://A"), "HTTP://A");
	const char *bad[] = {"javascript:alert(1)", "https://", "https:///x", "http://?q",
			     "https://a b", "ftp://x", "https://a\"b", "https://a<b",
			     "//example.com", "example.com", "https://exámple.com", "data:text/html,x",
			     ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (strcmp(url(bad[i]), "ERR") != 0) {
			fprintf(stderr, "  url accepted \"%s\"\n", bad[i]);
			t_failed_now = 1;
		}
	}
}

TEST(html_escaping)
{
	struct buf b = BUF_INIT;
	const char *s = "<a href=\"x\">Tom & Jerry's</a>";
	html_escape(&b, s, strlen(s));
	CHECK_STR(buf_str(&b), "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;");
	buf_reset(&b);
	html_escape(&b, "São Paulo", strlen("São Paulo"));
	CHECK_STR(buf_str(&b), "São Paulo");
	buf_reset(&b);
	html_escape(&b, "a&b", 1); /* only n bytes */
	CHECK_STR(buf_str(&b), "a");
	buf_free(&b);
}

/* ------------------------------------------------- embedded templates */

TEST(embedded_set)
{
	struct template_set *set = embedded();
	CHECK(set != NULL);
	if (!set)
		return;
	const char **names;
	size_t n = template_names(set, &names);
	CHECK(n == 5);
	const char *want[] = {"acordo", "atraso", "lembrete", "notificacao-extrajudicial",
			      "vencimento"};
	for (size_t i = 0; i < 5 && i < n; i++)
		CHECK_STR(names[i], want[i]);
	for (size_t i = 0; i < n; i++) {
		const struct template *t = template_find(set, names[i]);
		CHECK(t != NULL);
		if (!t)
			continue;
		CHECK_STR(template_name(t), names[i]);
		CHECK_STR(template_language(t), "pt-BR");
		CHECK(template_description(t)[0] != '\0');
	}
	CHECK(template_find(set, "nope") == NULL);
	CHECK(template_find(set, "") == NULL);
	CHECK(template_find(set, "LEMBRETE") == NULL);
	const struct template *t = template_find(set, "lembrete");
	const char *const *vars = NULL;
	size_t nreq = 0;
	CHECK(t && template_vars(t, &vars, &nreq) == 11);
	CHECK(nreq == 4);
	CHECK(vars && strcmp(vars[0], "nome") == 0 && strcmp(vars[3], "vencimento") == 0);
	template_set_free(set);
}

/* Rendering must leave no tag, keep the subject on one line, escape HTML
 * and keep the </body> the composer needs. */
static void check_rendered(const char *name, const struct rendered *r, int all)
{
	if (!r->subject || !r->text || !r->html) {
		fprintf(stderr, "  %s: no output\n", name);
		t_failed_now = 1;
		return;
	}
	CHECK(strpbrk(r->subject, "\r\n") == NULL);
	CHECK(!strstr(r->subject, "{{") && !strstr(r->text, "{{") && !strstr(r->html, "{{"));
	CHECK(!strstr(r->subject, "}}") && !strstr(r->text, "}}") && !strstr(r->html, "}}"));
	CHECK(strstr(r->html, "</body>") != NULL);
	CHECK(strstr(r->html, "<script") == NULL);
	CHECK(strstr(r->text, "\n\n\n") == NULL); /* sections leave no gaps */
	CHECK(strstr(r->text, "Ltda..") == NULL && strstr(r->html, "Ltda..") == NULL);
	CHECK(strstr(r->subject, "Ferreira & Cia. Ltda.") != NULL);
	CHECK(strstr(r->text, "Ferreira & Cia. Ltda.") != NULL);
	CHECK(strstr(r->html, "Ferreira &amp; Cia. Ltda.") != NULL);
	CHECK(strstr(r->html, "Ferreira & Cia") == NULL);
	CHECK(strstr(r->text, "R$ 1.234,56") != NULL);
	if (strcmp(name, "acordo") != 0 || all)
		CHECK(strstr(r->text, "01/12/2026") != NULL);
	if (strcmp(name, "notificacao-extrajudicial") != 0)
		CHECK(strstr(r->text, "Maria d'Ávila & Filhos <teste>") != NULL);
	CHECK(strstr(r->html, "Maria d&#39;Ávila &amp; Filhos &lt;teste&gt;") != NULL);
	CHECK(strstr(r->html, "<teste>") == NULL);
	int has_link = strstr(r->html, "href=\"https://pagar.example.com.br/b/123?x=1&amp;y=2\"") != NULL;
	CHECK(has_link == all);
	CHECK((strstr(r->text, "https://pagar.example.com.br/b/123?x=1&y=2") != NULL) == all);
	CHECK((strstr(r->text, "Mensalidade de novembro/2026") != NULL) == all);
	CHECK((strstr(r->html, "12.345.678/0001-90") != NULL) == all);
	CHECK((strstr(r->text, "Documento:") != NULL) == all);
	CHECK(strstr(r->text, "Referente a: \n") == NULL);
}

TEST(render_every_shipped_template)
{
	struct template_set *set = embedded();
	if (!set) {
		CHECK(0);
		return;
	}
	const char **names;
	size_t n = template_names(set, &names);
	for (size_t i = 0; i < n; i++) {
		const struct template *t = template_find(set, names[i]);
		for (int all = 1; all >= 0; all--) {
			json_t *vars = sample_vars(t, all);
			struct selo_err err;
			err_clear(&err);
			CHECK(template_check(t, vars, 1024, &err) == 0);
			struct rendered r;
			int rc = template_render(t, vars, &r, &err);
			CHECK(rc == 0);
			if (rc != 0)
				fprintf(stderr, "  %s: %s\n", names[i], err.msg);
			else
				check_rendered(names[i], &r, all);
			if (getenv("SELO_SHOW_TEMPLATES"))
				printf("== %s (%s)\n%s\n--\n%s--\n%s\n", names[i],
				       all ? "all" : "required", r.subject, r.text, r.html);
			rendered_free(&r);
			json_decref(vars);
		}
	}
	const struct template *a = template_find(set, "acordo");
	json_t *vars = sample_vars(a, 1);
	struct rendered r;
	struct selo_err err;
	err_clear(&err);
	CHECK(template_render(a, vars, &r, &err) == 0);
	CHECK(r.text && strstr(r.text, "Valor de cada parcela: R$ 108,34\n")); /* 108.335 */
	CHECK(r.text && strstr(r.text, "Número de parcelas: 12\n"));
	CHECK(r.text && strstr(r.text, "Para aceitar a proposta, acesse:\n"));
	rendered_free(&r);
	json_object_del(vars, "link_pagamento");
	CHECK(template_render(a, vars, &r, &err) == 0);
	CHECK(r.text && strstr(r.text, "Para aceitar a proposta, entre em contato com"));
	CHECK(r.text && !strstr(r.text, "acesse:"));
	rendered_free(&r);
	json_decref(vars);
	template_set_free(set);
}

/* The whole text of one rendering, so the layout of sections is pinned. */
TEST(render_lembrete_exact)
{
	struct template_set *set = embedded();
	const struct template *t = set ? template_find(set, "lembrete") : NULL;
	if (!t) {
		CHECK(0);
		template_set_free(set);
		return;
	}
	json_t *vars = json_pack("{s:s, s:s, s:f, s:s, s:s}", "nome", "Ana", "credor", "Loja X",
				 "valor", 99.9, "vencimento", "2026-03-05", "contato",
				 "0800 000 0000");
	struct rendered r;
	struct selo_err err;
	err_clear(&err);
	CHECK(template_render(t, vars, &r, &err) == 0);
	CHECK_STR(r.subject, "Lembrete de pagamento: vencimento em 05/03/2026 – Loja X");
	CHECK_STR(r.text, "Olá, Ana.\n"
			  "\n"
			  "Loja X lembra que o pagamento abaixo vence em 05/03/2026. Este é um aviso "
			  "antecipado, para que você possa se organizar: não há nada em atraso.\n"
			  "\n"
			  "Valor: R$ 99,90\n"
			  "Vencimento: 05/03/2026\n"
			  "Credor: Loja X\n"
			  "\n"
			  "COMO PAGAR\n"
			  "\n"
			  "O boleto pode ser pago em qualquer banco, casa lotérica ou aplicativo "
			  "bancário até a data de vencimento. Se precisar de uma segunda via, de outra "
			  "data ou de outra forma de pagamento, fale com Loja X pelos canais indicados "
			  "abaixo.\n"
			  "\n"
			  "Se você já fez o pagamento, por favor desconsidere esta mensagem. A "
			  "compensação de um boleto pode levar até três dias úteis.\n"
			  "\n"
			  "ANTES DE PAGAR, CONFIRA\n"
			  "\n"
			  "O beneficiário do boleto deve ser Loja X, e o valor deve ser o informado "
			  "acima. Loja X não pede senhas, códigos recebidos por SMS nem pagamento em "
			  "conta de outra pessoa. Se algo não conferir, fale com Loja X antes de pagar.\n"
			  "\n"
			  "ATENDIMENTO\n"
			  "\n"
			  "Para tirar dúvidas, pedir o demonstrativo do débito ou combinar o "
			  "pagamento, fale com Loja X: 0800 000 0000.\n"
			  "\n"
			  "SEUS DIREITOS\n"
			  "\n"
			  "Se você não reconhece esta cobrança ou não concorda com o valor, pode "
			  "contestá-la junto a Loja X, dizendo o motivo; a contestação deve ser "
			  "analisada e respondida. Pelo Código de Defesa do Consumidor (Lei nº "
			  "8.078/1990, art. 42), na cobrança de dívidas o consumidor não pode ser "
			  "exposto a ridículo nem sofrer constrangimento ou ameaça, e quem paga "
			  "quantia indevida tem direito a receber de volta o dobro do que pagou a "
			  "mais, com correção monetária e juros, salvo engano justificável. Se não "
			  "houver solução, você pode procurar o Procon da sua cidade ou registrar uma "
			  "reclamação em consumidor.gov.br.\n"
			  "\n"
			  "Atenciosamente,\n"
			  "Loja X\n"
			  "\n"
			  "--\n"
			  "Você recebe esta mensagem porque consta nos registros de Loja X como "
			  "responsável por este pagamento. Ela trata de uma obrigação sua e não é "
			  "publicidade. Loja X usa seus dados pessoais para cobrar este débito, como "
			  "permite a Lei Geral de Proteção de Dados (Lei nº 13.709/2018, art. 7º, "
			  "incisos V e X); para saber quais dados são usados ou pedir uma correção, "
			  "fale com Loja X pelos mesmos canais. Esta mensagem tem assinatura digital "
			  "do remetente, que o seu programa de e-mail pode exibir.\n");
	rendered_free(&r);
	json_decref(vars);
	template_set_free(set);
}

/* ------------------------------------------------------ template_check */

static const struct template *lembrete(struct template_set **set)
{
	*set = embedded();
	return *set ? template_find(*set, "lembrete") : NULL;
}

static json_t *good_vars(void)
{
	return json_pack("{s:s, s:s, s:s, s:s}", "nome", "Ana", "credor", "Loja X", "valor",
			 "10.00", "vencimento", "2026-03-05");
}

TEST(check_missing_required)
{
	struct template_set *set;
	const struct template *t = lembrete(&set);
	CHECK(t != NULL);
	if (!t)
		return;
	json_t *vars = good_vars();
	json_object_del(vars, "valor");
	struct selo_err err;
	err_clear(&err);
	CHECK(template_check(t, vars, 1024, &err) == -1);
	CHECK(err.status == 422);
	CHECK_STR(err.type, "validation-failed");
	CHECK(strstr(err.msg, "lembrete") != NULL);
	CHECK(err.nfields == 1);
	CHECK(field_says(&err, "vars.valor", "required variable is missing"));
	/* render refuses the same vars, with the same error and no output */
	struct rendered r;
	err_clear(&err);
	CHECK(template_render(t, vars, &r, &err) == -1);
	CHECK(err.status == 422 && field_says(&err, "vars.valor", "missing"));
	CHECK(r.subject == NULL && r.text == NULL && r.html == NULL);
	rendered_free(&r);
	/* NULL vars: every required one is missing */
	err_clear(&err);
	CHECK(template_check(t, NULL, 1024, &err) == -1);
	CHECK(err.nfields == 4);
	CHECK(field_says(&err, "vars.nome", "missing"));
	CHECK(field_says(&err, "vars.vencimento", "missing"));
	/* empty or blank required values */
	json_object_set_new(vars, "valor", json_string("10"));
	json_object_set_new(vars, "nome", json_string(""));
	json_object_set_new(vars, "credor", json_string("   "));
	err_clear(&err);
	CHECK(template_check(t, vars, 1024, &err) == -1);
	CHECK(field_says(&err, "vars.nome", "required variable is empty"));
	CHECK(field_says(&err, "vars.credor", "required variable is empty"));
	/* the good set passes, and an empty optional one too */
	json_decref(vars);
	vars = good_vars();
	json_object_set_new(vars, "contato", json_string(""));
	json_object_set_new(vars, "link_pagamento", json_string(""));
	err_clear(&err);
	CHECK(template_check(t, vars, 1024, &err) == 0);
	CHECK(err.status == 0 && err.nfields == 0);
	json_decref(vars);
	template_set_free(set);
}

TEST(check_unknown_variable)
{
	struct template_set *set;
	const struct template *t = lembrete(&set);
	if (!t) {
		CHECK(0);
		return;
	}
	json_t *vars = good_vars();
	json_object_set_new(vars, "foo", json_string("bar"));
	json_object_set_new(vars, "dias_atraso", json_integer(3)); /* atraso's, not ours */
	json_object_set_new(vars, "a\nb", json_string("x"));
	struct selo_err err;
	err_clear(&err);
	CHECK(template_check(t, vars, 1024, &err) == -1);
	CHECK(err.status == 422);
	CHECK(field_says(&err, "vars.foo", "unknown variable: not used by template lembrete"));
	CHECK(field_says(&err, "vars.dias_atraso", "unknown variable"));
	CHECK(field_says(&err, "vars.a?b", "unknown variable")); /* shown safely */
	CHECK(err.nfields == 3);
	json_decref(vars);
	template_set_free(set);
}

TEST(check_control_characters)
{
	struct template_set *set;
	const struct template *t = lembrete(&set);
	if (!t) {
		CHECK(0);
		return;
	}
	const struct { const char *value, *name; } cases[] = {
		{"Ana\r\nBcc: x@y", "CR"}, {"Ana\nSilva", "LF"},  {"Ana\tSilva", "TAB"},
		{"Ana\x7f", "DEL"},         {"Ana\x1b[31m", "U+001B"}, {"Ana\xc2\x85", "U+0085"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *vars = good_vars();
		json_object_set_new(vars, "nome", json_string(cases[i].value));
		struct selo_err err;
		err_clear(&err);
		CHECK(template_check(t, vars, 1024, &err) == -1);
		CHECK(err.status == 422);
		CHECK(field_says(&err, "vars.nome", "contains control characters"));
		CHECK(field_says(&err, "vars.nome", cases[i].name));
		json_decref(vars);
	}
	/* NUL inside a string (jansson allows it with json_stringn) */
	json_t *vars = good_vars();
	json_object_set_new(vars, "credor", json_stringn("Lo\0ja", 5));
	struct selo_err err;
	err_clear(&err);
	CHECK(template_check(t, vars, 1024, &err) == -1);
	CHECK(field_says(&err, "vars.credor", "NUL"));
	json_decref(vars);
	template_set_free(set);
}

TEST(check_invalid_utf8_and_types)
{
	struct template_set *set;
	const struct template *t = lembrete(&set);
	if (!t) {
		CHECK(0);
		return;
	}
	json_t *vars = good_vars();
	json_object_set_new(vars, "nome", json_string_nocheck("Jo\xe3o"));     /* Latin-1 */
	json_object_set_new(vars, "credor", json_string_nocheck("\xed\xa0\x80")); /* surrogate */
	json_object_set_new(vars, "descricao", json_true());
	json_object_set_new(vars, "documento", json_null());
	json_object_set_new(vars, "contato", json_object());
	json_object_set_new(vars, "linha_digitavel", json_array());
	struct selo_err err;
	err_clear(&err);
	CHECK(template_check(t, vars, 1024, &err) == -1);
	CHECK(field_says(&err, "vars.nome", "not valid UTF-8"));
	CHECK(field_says(&err, "vars.credor", "not valid UTF-8"));
	CHECK(field_says(&err, "vars.descricao", "must be a string or a number, not a boolean"));
	CHECK(field_says(&err, "vars.documento", "not null"));
	CHECK(field_says(&err, "vars.contato", "not an object"));
	CHECK(field_says(&err, "vars.linha_digitavel", "not an array"));
	CHECK(err.nfields == 6);
	json_decref(vars);
	template_set_free(set);
}

TEST(check_too_long)
{
	struct template_set *set;
	const struct template *t = lembrete(&set);
	if (!t) {
		CHECK(0);
		return;
	}
	json_t *vars = good_vars();
	json_object_set_new(vars, "nome", json_string("Ana Clara")); /* 9 bytes */
	json_object_set_new(vars, "descricao", json_string("ãããããã"));  /* 12 bytes */
	struct selo_err err;
	err_clear(&err);
	CHECK(template_check(t, vars, 10, &err) == -1);
	CHECK(field_says(&err, "vars.descricao", "too long: 12 bytes, the limit is 10"));
	CHECK(field(&err, "vars.nome") == NULL);
	err_clear(&err);
	CHECK(template_check(t, vars, 12, &err) == 0);
	err_clear(&err);
	CHECK(template_check(t, vars, 0, &err) == 0); /* 0: no limit */
	json_decref(vars);
	template_set_free(set);
}

TEST(check_vars_not_object)
{
	struct template_set *set;
	const struct template *t = lembrete(&set);
	if (!t) {
		CHECK(0);
		return;
	}
	json_t *bad[] = {json_array(), json_string("nome=Ana"), json_integer(1), json_null()};
	for (size_t i = 0; i < 4; i++) {
		struct selo_err err;
		err_clear(&err);
		CHECK(template_check(t, bad[i], 1024, &err) == -1);
		CHECK(err.status == 422 && strcmp(err.type, "validation-failed") == 0);
		CHECK(field_says(&err, "vars", "must be a JSON object"));
		CHECK(err.nfields == 1);
		json_decref(bad[i]);
	}
	template_set_free(set);
}

TEST(check_filter_values)
{
	struct template_set *set;
	const struct template *t = lembrete(&set);
	if (!t) {
		CHECK(0);
		return;
	}
	json_t *vars = good_vars();
	json_object_set_new(vars, "valor", json_string("1,234.56"));
	json_object_set_new(vars, "vencimento", json_string("2026-02-29"));
	json_object_set_new(vars, "link_pagamento", json_string("javascript:alert(1)"));
	struct selo_err err;
	err_clear(&err);
	CHECK(template_check(t, vars, 1024, &err) == -1);
	CHECK(field_says(&err, "vars.valor", "brl filter"));
	CHECK(field_says(&err, "vars.vencimento", "must be a date YYYY-MM-DD for the data filter"));
	CHECK(field_says(&err, "vars.link_pagamento", "url filter"));
	json_object_set_new(vars, "valor", json_real(1e300)); /* no amount */
	json_object_set_new(vars, "vencimento", json_integer(20260301));
	json_object_set_new(vars, "link_pagamento", json_string("https://ok.example/x"));
	err_clear(&err);
	CHECK(template_check(t, vars, 1024, &err) == -1);
	CHECK(field_says(&err, "vars.valor", "brl filter"));
	CHECK(field_says(&err, "vars.vencimento", "data filter"));
	CHECK(err.nfields == 2);
	json_decref(vars);
	template_set_free(set);
}

/* ------------------------------------------------- loading a directory */

static const char *render_subject_of(const struct template *t, json_t *vars)
{
	struct rendered r;
	struct selo_err err;
	err_clear(&err);
	if (template_render(t, vars, &r, &err) < 0) {
		snprintf(out_buf, sizeof(out_buf), "ERR %s", err.nfields ? err.fields[0].msg : err.msg);
	} else {
		snprintf(out_buf, sizeof(out_buf), "%s", r.subject);
		rendered_free(&r);
	}
	json_decref(vars);
	return out_buf;
}

TEST(load_from_directory)
{
	char *dir = make_dir();
	CHECK(dir != NULL);
	if (!dir)
		return;
	struct tpl_files f = {
		"; a comment\n[template]\nlanguage = en\ndescription = A test\n"
		"required = nome ; inline comment\noptional = n, link,\n  nota\n",
		"Hi {{ nome }} {{n}}\n",
		"Dear {{nome}},\r\n{{#nota}}\r\nNote: {{nota}}\r\n{{/nota}}\r\n{{^nota}}\r\nNo note.\r\n"
		"{{/nota}}\r\nBye{{#link}} {{link|url}}{{/link}}.\r\n",
		"<html><body><p>{{nome}}</p>{{#link}}<a href=\"{{link|url}}\">x</a>{{/link}}</BODY></html>",
	};
	write_template(dir, "zeta", &f);
	write_template(dir, "alpha", &f);
	write_file(dir, ".", "README.md", "not a template\n"); /* a file beside: ignored */
	write_file(dir, "alpha", "notes.txt", "ignored\n");
	char hidden[512];
	snprintf(hidden, sizeof(hidden), "%s/.git", dir);
	mkdir(hidden, 0700);
	struct template_set *set = NULL;
	struct selo_err err;
	err_clear(&err);
	CHECK(template_set_load(dir, &set, &err) == 0);
	if (!set) {
		fprintf(stderr, "  %s\n", err.msg);
		rm_rf(dir);
		free(dir);
		return;
	}
	const char **names;
	CHECK(template_names(set, &names) == 2);
	CHECK_STR(names[0], "alpha");
	CHECK_STR(names[1], "zeta");
	CHECK(template_find(set, "lembrete") == NULL); /* the directory replaces them */
	const struct template *t = template_find(set, "zeta");
	CHECK_STR(template_language(t), "en");
	CHECK_STR(template_description(t), "A test");
	const char *const *vars;
	size_t nreq;
	CHECK(template_vars(t, &vars, &nreq) == 4 && nreq == 1);
	CHECK_STR(vars[3], "nota");

	json_t *v = json_pack("{s:s, s:s, s:s}", "nome", "A&B", "nota", "<b>", "link",
			      "https://x.example/?a=1&b=2");
	struct rendered r;
	err_clear(&err);
	CHECK(template_render(t, v, &r, &err) == 0);
	CHECK_STR(r.subject, "Hi A&B ");
	CHECK_STR(r.text, "Dear A&B,\r\nNote: <b>\r\nBye https://x.example/?a=1&b=2.\r\n");
	CHECK_STR(r.html, "<html><body><p>A&amp;B</p><a href=\"https://x.example/?a=1&amp;b=2\">"
			  "x</a></BODY></html>");
	rendered_free(&r);
	json_object_set_new(v, "nota", json_string(" "));
	json_object_del(v, "link");
	CHECK(template_render(t, v, &r, &err) == 0);
	CHECK_STR(r.text, "Dear A&B,\r\nNo note.\r\nBye.\r\n");
	rendered_free(&r);
	json_decref(v);

	/* numbers without a filter render as their plain decimal text */
	CHECK_STR(render_subject_of(t, json_pack("{s:s, s:i}", "nome", "x", "n", -42)), "Hi x -42");
	CHECK_STR(render_subject_of(t, json_pack("{s:s, s:f}", "nome", "x", "n", 1234.5)),
		  "Hi x 1234.5");
	CHECK_STR(render_subject_of(t, json_pack("{s:s, s:f}", "nome", "x", "n", 0.1)),
		  "Hi x 0.1");
	CHECK_STR(render_subject_of(t, json_pack("{s:s, s:f}", "nome", "x", "n", 1e20)),
		  "Hi x 100000000000000000000");
	CHECK_STR(render_subject_of(t, json_pack("{s:s, s:f}", "nome", "x", "n", 1.5e-5)),
		  "Hi x 0.000015");
	CHECK_STR(render_subject_of(t, json_pack("{s:s, s:f}", "nome", "x", "n", 1e300)),
		  "Hi x 1e+300");
	template_set_free(set);
	rm_rf(dir);
	free(dir);
}

/* brl on JSON numbers goes through the shortest decimal text, rounded half up */
TEST(brl_json_numbers)
{
	struct tpl_files f = {"[template]\nrequired = v\n", "{{v|brl}}", "{{v|brl}}",
			      "<body>{{v|brl}}</body>"};
	struct template_set *set = NULL;
	struct selo_err err;
	CHECK(load_one(&f, &set, &err) == 0);
	const struct template *t = set ? template_find(set, "t") : NULL;
	if (!t) {
		CHECK(0);
		template_set_free(set);
		return;
	}
	const struct { double d; const char *want; } reals[] = {
		{0.0, "R$ 0,00"},          {0.5, "R$ 0,50"},
		{1234.56, "R$ 1.234,56"},  {1234567.8, "R$ 1.234.567,80"},
		{0.125, "R$ 0,13"},        {2.675, "R$ 2,68"},
		{1.005, "R$ 1,01"},        {9.995, "R$ 10,00"},
		{999999.999, "R$ 1.000.000,00"}, {-0.125, "-R$ 0,13"},
		{-10.0, "-R$ 10,00"},      {-0.001, "R$ 0,00"},
		{1e5, "R$ 100.000,00"},    {1e-9, "R$ 0,00"}, {-1e-60, "R$ 0,00"}, {0.005, "R$ 0,01"},
		{0.1 + 0.2, "R$ 0,30"},    {1e15, "R$ 1.000.000.000.000.000,00"},
	};
	for (size_t i = 0; i < sizeof(reals) / sizeof(reals[0]); i++) {
		const char *got = render_subject_of(t, json_pack("{s:f}", "v", reals[i].d));
		if (strcmp(got, reals[i].want) != 0) {
			fprintf(stderr, "  brl(%.17g) = \"%s\", want \"%s\"\n", reals[i].d, got,
				reals[i].want);
			t_failed_now = 1;
		}
	}
	CHECK_STR(render_subject_of(t, json_pack("{s:I}", "v", (json_int_t)0)), "R$ 0,00");
	CHECK_STR(render_subject_of(t, json_pack("{s:I}", "v", (json_int_t)-1234)),
		  "-R$ 1.234,00");
	CHECK_STR(render_subject_of(t, json_pack("{s:I}", "v", (json_int_t)9223372036854775807LL)),
		  "R$ 9.223.372.036.854.775.807,00");
	CHECK_STR(render_subject_of(t, json_pack("{s:s}", "v", "1234,50")),
		  "ERR must be an amount for the brl filter: a JSON number, or a string like "
		  "1234.56 (digits, optional '-', '.' before at most 2 decimals)");
	template_set_free(set);
}

TEST(load_errors)
{
	const char *html = "<html><body></body></html>";
	struct tpl_files f;

	f = (struct tpl_files){GOOD_INI, "{{a}}", "{{a|brll}}", html};
	CHECK(load_fails_with(&f, "body.txt line 1", "unknown filter \"brll\""));
	f = (struct tpl_files){GOOD_INI, "{{a}}", "ok\nok {{a", html};
	CHECK(load_fails_with(&f, "body.txt line 2", "not closed"));
	f = (struct tpl_files){GOOD_INI, "{{a}}", "{{a\n}}", html};
	CHECK(load_fails_with(&f, "body.txt line 1", "not closed"));
	f = (struct tpl_files){GOOD_INI, "{{a}}", "x {{ {{a}}", html};
	CHECK(load_fails_with(&f, "body.txt", "not closed"));
	f = (struct tpl_files){GOOD_INI, "{{a}} {{c}}", "{{b}}", html};
	CHECK(load_fails_with(&f, "subject.txt line 1", "variable c is not listed"));
	f = (struct tpl_files){GOOD_INI, "{{a}}", "{{b}}", "<body>\n{{ a b }}</body>"};
	CHECK(load_fails_with(&f, "body.html line 2", "unexpected"));
	f = (struct tpl_files){GOOD_INI, "{{a}}", "{{b}} {{}}", html};
	CHECK(load_fails_with(&f, "body.txt", "does not name a variable"));
	f = (struct tpl_files){GOOD_INI, "{{a}}", "{{#b}}x", html};
	CHECK(load_fails_with(&f, "body.txt", "section b is opened but never closed"));
	f = (struct tpl_files){GOOD_INI, "{{a}}", "{{#b}}x{{/a}}", html};
	CHECK(load_fails_with(&f, "body.txt line 1", "{{/a}} closes no open"));
	f = (struct tpl_files){GOOD_INI, "{{a}}", "{{#b|brl}}x{{/b}}", html};
	CHECK(load_fails_with(&f, "body.txt", "takes no filter"));
	f = (struct tpl_files){GOOD_INI, "{{a}}", "x", html};
	CHECK(load_fails_with(&f, "template.ini", "variable b is declared but used in no file"));
	f = (struct tpl_files){"[template]\nrequierd = a\n", "{{a}}", "x", html};
	CHECK(load_fails_with(&f, "template.ini line 2", "unknown key \"requierd\""));
	f = (struct tpl_files){"required = a\n", "{{a}}", "x", html};
	CHECK(load_fails_with(&f, "template.ini line 1", "outside the [template] section"));
	f = (struct tpl_files){"[template]\nrequired = a, 9lives\n", "{{a}}", "x", html};
	CHECK(load_fails_with(&f, "template.ini", "\"9lives\" is not a variable name"));
	f = (struct tpl_files){"[template]\nrequired = a\noptional = a\n", "{{a}}", "x", html};
	CHECK(load_fails_with(&f, "template.ini", "listed twice"));
	f = (struct tpl_files){"[template]\njust text\n", "{{a}}", "x", html};
	CHECK(load_fails_with(&f, "template.ini line 2", NULL));
	f = (struct tpl_files){GOOD_INI, "{{a}}\nsecond line\n", "{{b}}", html};
	CHECK(load_fails_with(&f, "subject.txt", "single line"));
	f = (struct tpl_files){GOOD_INI, "\n", "{{a}}{{b}}", html};
	CHECK(load_fails_with(&f, "subject.txt", "empty"));
	f = (struct tpl_files){GOOD_INI, "{{a}}", "{{b}}", "<html><p>x</p></html>"};
	CHECK(load_fails_with(&f, "body.html", "</body>"));
	f = (struct tpl_files){GOOD_INI, "{{a}}", "ok\nbad \xff{{b}}", html};
	CHECK(load_fails_with(&f, "body.txt line 2", "not valid UTF-8"));
	f = (struct tpl_files){GOOD_INI, "{{a}}", NULL, html};
	CHECK(load_fails_with(&f, "missing body.txt", NULL));
	f = (struct tpl_files){NULL, "{{a}}", "x", html};
	CHECK(load_fails_with(&f, "missing template.ini", NULL));
}

TEST(load_errors_set_level)
{
	struct template_set *set = (struct template_set *)&set; /* must be reset */
	struct selo_err err;
	err_clear(&err);
	CHECK(template_set_load("/nonexistent/selo-templates", &set, &err) == -1);
	CHECK(set == NULL);
	CHECK(strstr(err.msg, "/nonexistent/selo-templates") != NULL);

	char *dir = make_dir();
	if (!dir) {
		CHECK(0);
		return;
	}
	err_clear(&err);
	CHECK(template_set_load(dir, &set, &err) == -1); /* empty */
	CHECK(strstr(err.msg, "no templates") != NULL);

	struct tpl_files f = {GOOD_INI, "{{a}}", "{{b}}", "<body></body>"};
	write_template(dir, "Bad Name", &f);
	err_clear(&err);
	CHECK(template_set_load(dir, &set, &err) == -1);
	CHECK(strstr(err.msg, "template Bad Name") && strstr(err.msg, "lowercase"));
	rm_rf(dir);
	free(dir);

	/* one bad template fails the whole set, naming it */
	dir = make_dir();
	if (!dir)
		return;
	write_template(dir, "good", &f);
	struct tpl_files bad = {GOOD_INI, "{{a}}", "{{b|nope}}", "<body></body>"};
	write_template(dir, "worse", &bad);
	err_clear(&err);
	CHECK(template_set_load(dir, &set, &err) == -1);
	CHECK(set == NULL);
	CHECK(strstr(err.msg, "template worse, body.txt line 1: unknown filter") != NULL);
	rm_rf(dir);
	free(dir);

	/* "" means the embedded set, as NULL does */
	err_clear(&err);
	CHECK(template_set_load("", &set, &err) == 0);
	CHECK(set && template_find(set, "acordo") != NULL);
	template_set_free(set);
	template_set_free(NULL);
}
