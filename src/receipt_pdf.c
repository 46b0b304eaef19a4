/* receipt_pdf.c: the PDF receipt a person reads (receipt_pdf.h), laid out
 * from a selo-receipt/v1 JSON document with cairo (PDF surface) and pango
 * (text layout, DejaVu fonts embedded), the QR code by libqrencode.
 *   receipt_pdf_layout   the pages alone (an unsigned PDF)
 *   receipt_pdf          the pages + the embedded JSON and .eml, signed (pdf.c)
 *   receipt_pdf_local_offset   São Paulo's UTC offset at an instant (tz db)
 * Sections, in order: the notice, the timeline (one row per event: UTC and
 * São Paulo time, a plain-words label, the ETSI EN 319 522-1 evidence it
 * stands for, details, what it proves and what it does not), the evidence
 * block with its QR code, the message's text (full form only) and the
 * closing "what this receipt proves" box. docs/receipt-pdf-layout.md has the
 * tables in words.
 *
 * Every string in a receipt is untrusted. Text reaches pango only as plain
 * text with attribute lists (never markup), after put_clean: valid UTF-8,
 * no control or bidirectional-override characters, capped. The .eml is
 * read by a small bounded MIME walker (depth, parts and sizes capped).
 * Errors: 400 for an unknown language, 422 when the input is not a
 * selo-receipt/v1 document, 500 when cairo fails; nothing aborts. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <cairo.h>
#include <cairo-pdf.h>
#include <glib.h>
#include <jansson.h>
#include <openssl/cms.h>
#include <openssl/objects.h>
#include <openssl/pkcs7.h>
#include <openssl/ts.h>
#include <pango/pangocairo.h>
#include <qrencode.h>
#include "selo/buf.h"
#include "selo/clock.h"
#include "selo/codec.h"
#include "selo/crypto.h"
#include "selo/event.h"
#include "selo/id.h"
#include "selo/note.h"
#include "selo/receipt.h"
#include "selo/receipt_pdf.h"
#include "selo/tsa.h"

/* ---- limits: a receipt is at most 64 MiB (docs/receipt.md) ------------- */

#define MAX_RECEIPT ((size_t)64 << 20)
#define MAX_EVENTS 10000
#define MAX_ENTRY 65535
#define MAX_CERTS 8
#define MAX_PAGES 4000            /* 10000 short rows take about 700 pages */
#define CAP_VALUE 600             /* one shown value (address, reply, agent ...) */
#define CAP_LINE 2000             /* a whole detail line */
#define CAP_BODY ((size_t)64 << 10) /* the message's text as shown */
#define MAX_MIME_HEADER ((size_t)256 << 10)
#define MAX_MIME_DEPTH 6
#define MAX_MIME_PARTS 64
#define MAX_VARS 60
#define MAX_ATTACHMENTS 50

/* ---- geometry, in PDF points (A4) --------------------------------------- */

#define PAGE_W 595.276
#define PAGE_H 841.89
#define MARGIN_X 42.0
#define TOP 46.0
#define BOTTOM (PAGE_H - 58.0)
#define CONTENT_W (PAGE_W - 2 * MARGIN_X)
#define KV_LABEL_W 128.0          /* the notice's and the evidence's label column */
#define TIME_W 122.0              /* the timeline's time column */
#define GUTTER 8.0
#define QR_SIZE 104.0

enum lang { PT = 0, EN = 1 };

/* ---- every word on the pages, in one table ------------------------------ */

enum str_id {
	S_TITLE, S_NOTICE, S_ISSUED, S_GENERATED, S_FORM, S_FORM_FULL, S_FORM_SHORT, S_PAGE,
	S_OF, S_FOOTER, S_UTC, S_SAO_PAULO, S_TZ_MISSING, S_LOG_ENTRY,
	/* the notice */
	S_SEC_NOTICE, S_ID, S_REFERENCE, S_SENDER, S_SMIME_CERT, S_DKIM, S_RECIPIENT,
	S_RECIPIENT_NAME, S_SUBJECT, S_TEMPLATE, S_VARIABLES, S_ATTACHMENTS, S_MESSAGE,
	S_TRACKING, S_TRACK_OPENS, S_TRACK_CLICKS, S_TRACK_READ, S_NONE, S_NOT_DISCLOSED,
	S_SHORT_NOTE, S_FILENAME_WITHHELD, S_BYTES, S_YES, S_NO, S_NOT_RECORDED,
	/* the timeline */
	S_SEC_TIMELINE, S_TIMELINE_INTRO, S_COL_TIME, S_COL_EVENT, S_ETSI, S_PROVES, S_NOT_PROVES,
	S_CONTINUED,
	/* event labels */
	L_SUBMITTED, L_SEALED, L_RELAYED, L_DELIVERED, L_DEFERRED, L_FAILED, L_BOUNCED,
	L_NOT_SENT, L_OPEN_HUMAN, L_OPEN_PROXY, L_OPEN_SCANNER, L_CLICK_HUMAN, L_CLICK_PROXY,
	L_CLICK_SCANNER, L_READ, L_READ_MACHINE, L_CANCELED, L_SUMMARY, L_OTHER, L_UNREADABLE,
	/* ETSI column notes */
	E_PART_OF_SUBMISSION, E_TRANSPORT_LOG, E_NONE,
	/* what each row proves, and what it does not */
	P_SUBMITTED, N_SUBMITTED, P_SEALED, N_SEALED, P_RELAYED, N_RELAYED, P_DELIVERED,
	N_DELIVERED, P_DEFERRED, N_DEFERRED, P_FAILED, N_FAILED, P_BOUNCED, P_NOT_SENT,
	N_NOT_SENT, P_OPEN_HUMAN, N_OPEN, P_OPEN_MACHINE, N_MACHINE, P_CLICK_HUMAN, N_CLICK,
	P_CLICK_MACHINE, P_READ, N_READ, P_READ_MACHINE, P_CANCELED, P_SUMMARY, N_SUMMARY,
	P_OTHER, N_OTHER,
	P_UNREADABLE,
	/* detail labels */
	D_DIGEST, D_SIZE, D_MSGID, D_SMIME, D_CERT_SHA, D_SIG_TST, D_DKIM, D_SERVER, D_PEER,
	D_REPLY, D_TLS, D_NO_TLS, D_QUEUE, D_ATTEMPT, D_RETRY, D_ERROR, D_REASON, D_CLASS,
	D_RULE, D_DETAIL, D_IP, D_AGENT, D_LINK, D_AFTER, D_ARRIVED, D_METHOD, D_STATUS,
	D_DIAG, D_REMOTE, D_REPORTING, D_FINAL_RCPT, D_TRANSPORT, D_API_KEY, D_TYPE, D_FIELDS,
	D_LAST_ATTEMPT, D_DSN, D_FIRST_HIT, D_LAST_HIT, D_OPENS, D_CLICKS, D_ADDRESSES, D_FOLDED_AFTER,
	/* classifications and reasons */
	C_HUMAN, C_PROXY, C_SCANNER, R_REJECTED, R_EXPIRED, R_BOUNCED,
	/* the evidence */
	S_SEC_EVIDENCE, S_EVIDENCE_INTRO, S_LOG_ORIGIN, S_TREE_SIZE, S_ROOT, S_TST_TIME, S_TSA,
	S_TST_UNVERIFIED, S_TST_UNREADABLE, S_VKEY, S_HOW_TO, S_HOW_SELO, S_HOW_PAGE,
	S_HOW_OPENSSL, S_HOW_KEYS, S_QR_CAPTION, S_CHECKPOINT_UNREADABLE,
	/* the message's text */
	S_SEC_CONTENT, S_CONTENT_HTML, S_CONTENT_PLAIN, S_CONTENT_NONE, S_TRUNCATED,
	S_TRACKED_LINK, S_CONFIRM_LINK, S_IMAGE,
	/* the closing box */
	S_SEC_PROVES, S_PROVES_1, S_PROVES_2, S_PROVES_3, S_PROVES_4, S_PROVES_5, S_PROVES_6,
	S_PROVES_7,
	/* the embedded files (receipt_pdf) */
	S_ATT_JSON, S_ATT_EML, S_DOC_SUBJECT,
	S__COUNT
};

/* [id][PT], [id][EN]. Nothing else on the pages is in a natural language,
 * except values quoted from the receipt (SMTP replies, the classifier's
 * recorded detail), which are shown as data. */
static const char *const STR[S__COUNT][2] = {
	[S_TITLE] = {"Recibo de notificação eletrônica", "Electronic notice receipt"},
	[S_NOTICE] = {"Aviso", "Notice"},
	[S_ISSUED] = {"Recibo emitido em", "Receipt issued at"},
	[S_GENERATED] = {"PDF gerado em", "PDF made at"},
	[S_FORM] = {"Forma", "Form"},
	[S_FORM_FULL] = {"completa (com a mensagem)", "full (with the message)"},
	[S_FORM_SHORT] = {"resumida (sem o conteúdo da mensagem)",
			  "short (without the message's content)"},
	[S_PAGE] = {"página", "page"},
	[S_OF] = {"de", "of"},
	[S_FOOTER] = {"Recibo Selo", "Selo receipt"},
	[S_UTC] = {"UTC", "UTC"},
	[S_SAO_PAULO] = {"São Paulo", "São Paulo"},
	[S_TZ_MISSING] = {"fuso de São Paulo indisponível", "São Paulo time zone unavailable"},
	[S_LOG_ENTRY] = {"registro n.º", "log entry #"},

	[S_SEC_NOTICE] = {"A notificação", "The notice"},
	[S_ID] = {"Identificador", "Identifier"},
	[S_REFERENCE] = {"Referência", "Reference"},
	[S_SENDER] = {"Remetente (From)", "Sender (From)"},
	[S_SMIME_CERT] = {"Certificado S/MIME", "S/MIME certificate"},
	[S_DKIM] = {"Assinaturas DKIM", "DKIM signatures"},
	[S_RECIPIENT] = {"Destinatário", "Recipient"},
	[S_RECIPIENT_NAME] = {"Nome do destinatário", "Recipient's name"},
	[S_SUBJECT] = {"Assunto", "Subject"},
	[S_TEMPLATE] = {"Modelo", "Template"},
	[S_VARIABLES] = {"Variáveis do modelo", "Template variables"},
	[S_ATTACHMENTS] = {"Anexos", "Attachments"},
	[S_MESSAGE] = {"Mensagem enviada", "Message sent"},
	[S_TRACKING] = {"Rastreamento pedido", "Tracking asked for"},
	[S_TRACK_OPENS] = {"imagem", "image"},
	[S_TRACK_CLICKS] = {"links", "links"},
	[S_TRACK_READ] = {"confirmação de recebimento", "receipt confirmation"},
	[S_NONE] = {"nenhum", "none"},
	[S_NOT_DISCLOSED] = {"(não divulgado neste recibo)", "(not disclosed in this receipt)"},
	[S_SHORT_NOTE] = {"Forma resumida: assunto, variáveis, nomes de anexos e texto da mensagem "
			  "não são divulgados; a mensagem é identificada pelo seu SHA-256.",
			  "Short form: the subject, variables, attachment names and the message's "
			  "text are not disclosed; the message is identified by its SHA-256."},
	[S_FILENAME_WITHHELD] = {"(nome não divulgado)", "(name not disclosed)"},
	[S_BYTES] = {"bytes", "bytes"},
	[S_YES] = {"sim", "yes"},
	[S_NO] = {"não", "no"},
	[S_NOT_RECORDED] = {"(não registrado)", "(not recorded)"},

	[S_SEC_TIMELINE] = {"Linha do tempo", "Timeline"},
	[S_TIMELINE_INTRO] = {"Um evento por linha, na ordem do registro público (log). Horários em "
			      "UTC e em São Paulo (America/Sao_Paulo, base de fusos IANA).",
			      "One event per row, in the order of the public log. Times in UTC and "
			      "in São Paulo (America/Sao_Paulo, IANA time zone database)."},
	[S_COL_TIME] = {"Hora (UTC / São Paulo)", "Time (UTC / São Paulo)"},
	[S_COL_EVENT] = {"Evento, evidência ETSI EN 319 522-1 e detalhes",
			 "Event, ETSI EN 319 522-1 evidence and details"},
	[S_ETSI] = {"Evidência ETSI EN 319 522-1", "ETSI EN 319 522-1 evidence"},
	[S_PROVES] = {"Prova", "Proves"},
	[S_NOT_PROVES] = {"Não prova", "Does not prove"},
	[S_CONTINUED] = {"(continuação)", "(continued)"},

	[L_SUBMITTED] = {"Pedido de envio aceito", "Submission accepted"},
	[L_SEALED] = {"Mensagem lacrada e assinada", "Message sealed and signed"},
	[L_RELAYED] = {"Entregue ao servidor de envio (relay)", "Handed to the sending relay"},
	[L_DELIVERED] = {"Entregue ao servidor de e-mail do destinatário",
			 "Handed to the recipient's mail server"},
	[L_DEFERRED] = {"Tentativa adiada (recusa temporária)",
			"Attempt deferred (temporary refusal)"},
	[L_FAILED] = {"Entrega falhou", "Delivery failed"},
	[L_BOUNCED] = {"Devolvida depois de aceita (bounce)", "Bounced after acceptance"},
	[L_NOT_SENT] = {"Não enviada (falha ao preparar)", "Not sent (could not be prepared)"},
	[L_OPEN_HUMAN] = {"Imagem de rastreamento carregada", "Tracking image fetched"},
	[L_OPEN_PROXY] = {"Imagem buscada por um proxy de e-mail", "Image fetched by a mail proxy"},
	[L_OPEN_SCANNER] = {"Imagem buscada por um programa automático",
			    "Image fetched by an automated client"},
	[L_CLICK_HUMAN] = {"Link da mensagem acessado", "Link in the message followed"},
	[L_CLICK_PROXY] = {"Link acessado por um proxy", "Link fetched by a proxy"},
	[L_CLICK_SCANNER] = {"Link verificado por um programa automático",
			     "Link checked by an automated client"},
	[L_READ] = {"Recebimento confirmado (botão)", "Receipt confirmed (button)"},
	[L_READ_MACHINE] = {"Confirmação enviada por um programa automático",
			    "Confirmation sent by an automated client"},
	[L_CANCELED] = {"Envio cancelado", "Sending canceled"},
	[L_SUMMARY] = {"Resumo de acessos posteriores", "Summary of later hits"},
	[L_OTHER] = {"Evento de outro tipo", "Event of another type"},
	[L_UNREADABLE] = {"Registro ilegível", "Unreadable entry"},

	[E_PART_OF_SUBMISSION] = {"parte da SubmissionAcceptance (conteúdo)",
				  "part of SubmissionAcceptance (the content)"},
	[E_TRANSPORT_LOG] = {"nenhuma própria (registro de transporte da evidência final)",
			     "none of its own (transport log of the final evidence)"},
	[E_NONE] = {"nenhuma (fora do ETSI)", "none (outside ETSI)"},

	[P_SUBMITTED] = {"O Selo recebeu o pedido de envio, com os dados acima, nesta hora.",
			 "Selo received the request to send, with the data above, at this time."},
	[N_SUBMITTED] = {"Que a mensagem foi enviada.", "That the message was sent."},
	[P_SEALED] = {"A mensagem exata (SHA-256) foi assinada e guardada antes de qualquer envio.",
		      "The exact message (SHA-256) was signed and kept before any sending."},
	[N_SEALED] = {"Que foi enviada ou entregue.", "That it was sent or delivered."},
	[P_RELAYED] = {"O servidor de envio configurado aceitou a mensagem.",
		       "The configured sending relay accepted the message."},
	[N_RELAYED] = {"A entrega ao servidor do destinatário; a leitura.",
		       "Delivery to the recipient's server; reading."},
	[P_DELIVERED] = {"Entregue ao servidor de e-mail do destinatário, que a aceitou "
			 "(resposta 2xx) nesta hora.",
			 "Handed to the recipient's mail server, which accepted it (2xx reply) "
			 "at this time."},
	[N_DELIVERED] = {"Que chegou à caixa de entrada ou que foi lida.",
			 "That it reached the inbox or was read."},
	[P_DEFERRED] = {"Uma tentativa de entrega e a recusa temporária do servidor.",
			"A delivery attempt and the server's temporary refusal."},
	[N_DEFERRED] = {"Uma falha definitiva: a entrega foi tentada de novo.",
			"A final failure: delivery was tried again."},
	[P_FAILED] = {"Que a entrega foi tentada e falhou de vez, com a resposta do servidor "
		      "(diligência).",
		      "That delivery was attempted and finally failed, with the server's reply "
		      "(diligence)."},
	[N_FAILED] = {"Que o destinatário recebeu a mensagem.",
		      "That the recipient got the message."},
	[P_BOUNCED] = {"Um servidor informou, depois de aceitar a mensagem, que não pôde "
		       "entregá-la (RFC 3464).",
		       "A server reported, after accepting the message, that it could not "
		       "deliver it (RFC 3464)."},
	[P_NOT_SENT] = {"A mensagem não pôde ser preparada; nada foi enviado.",
			"The message could not be prepared; nothing was sent."},
	[N_NOT_SENT] = {"Qualquer contato com o destinatário.", "Any contact with the recipient."},
	[P_OPEN_HUMAN] = {"Um navegador ou programa de e-mail carregou a imagem de rastreamento "
			  "nesta hora.",
			  "A browser or mail program loaded the tracking image at this time."},
	[N_OPEN] = {"Que a mensagem foi lida: carregar uma imagem não é ler.",
		    "That the message was read: loading an image is not reading."},
	[P_OPEN_MACHINE] = {"Um proxy ou programa automático buscou a imagem (ver a regra): a "
			    "mensagem chegou a um sistema de e-mail.",
			    "A proxy or automated client fetched the image (see the rule): the "
			    "message reached a mail system."},
	[N_MACHINE] = {"Qualquer ação do destinatário.", "Any action by the recipient."},
	[P_CLICK_HUMAN] = {"Um link da mensagem foi acessado por um navegador nesta hora.",
			   "A link in the message was followed by a browser at this time."},
	[N_CLICK] = {"Quem acessou o link.", "Who followed the link."},
	[P_CLICK_MACHINE] = {"Um programa automático acessou o link (ver a regra).",
			     "An automated client fetched the link (see the rule)."},
	[P_READ] = {"Alguém com acesso à mensagem pressionou \"Confirmar recebimento\".",
		    "Someone with access to the message pressed \"Confirm receipt\"."},
	[N_READ] = {"A identidade de quem confirmou.", "Who confirmed it."},
	[P_READ_MACHINE] = {"Um programa automático enviou a confirmação (ver a regra).",
			    "An automated client sent the confirmation (see the rule)."},
	[P_CANCELED] = {"O envio foi cancelado antes de a mensagem ser entregue ao SMTP.",
			"Sending was canceled before the message was handed to SMTP."},
	[P_SUMMARY] = {"Quantos acessos à imagem e aos links houve no período, por "
		       "classificação, e de quantos endereços, além dos primeiros de cada tipo, "
		       "registrados um a um acima.",
		       "How many fetches of the image and the links there were in the period, "
		       "by classification, and from how many addresses, besides the first ones "
		       "of each kind, listed one by one above."},
	[N_SUMMARY] = {"Quem fez os acessos: a imagem e os links podem ser acessados por "
		       "qualquer pessoa ou programa que tenha uma cópia da mensagem.",
		       "Who made them: the image and the links can be fetched by anyone, or "
		       "any program, holding a copy of the message."},
	[P_OTHER] = {"O evento está no registro público, na posição indicada.",
		     "The event is in the public log at the position shown."},
	[N_OTHER] = {"Este recibo não descreve este tipo de evento.",
		     "This receipt does not describe this kind of event."},
	[P_UNREADABLE] = {"Os bytes do registro estão no log, mas não são um evento legível.",
			  "The entry's bytes are in the log but are not a readable event."},

	[D_DIGEST] = {"SHA-256", "SHA-256"},
	[D_SIZE] = {"Tamanho", "Size"},
	[D_MSGID] = {"Message-ID", "Message-ID"},
	[D_SMIME] = {"Assinatura S/MIME", "S/MIME signature"},
	[D_CERT_SHA] = {"certificado SHA-256", "certificate SHA-256"},
	[D_SIG_TST] = {"Carimbo do tempo da assinatura", "Signature timestamp"},
	[D_DKIM] = {"DKIM", "DKIM"},
	[D_SERVER] = {"Servidor do destinatário (MX)", "Recipient's server (MX)"},
	[D_PEER] = {"Conectado a", "Connected to"},
	[D_REPLY] = {"Resposta", "Reply"},
	[D_TLS] = {"TLS", "TLS"},
	[D_NO_TLS] = {"sem TLS", "no TLS"},
	[D_QUEUE] = {"Fila no servidor", "Server's queue id"},
	[D_ATTEMPT] = {"Tentativa", "Attempt"},
	[D_RETRY] = {"Nova tentativa em", "Retry at"},
	[D_ERROR] = {"Erro", "Error"},
	[D_REASON] = {"Motivo", "Reason"},
	[D_CLASS] = {"Classificação", "Classification"},
	[D_RULE] = {"regra", "rule"},
	[D_DETAIL] = {"detalhe registrado", "recorded detail"},
	[D_IP] = {"IP", "IP"},
	[D_AGENT] = {"Programa (user agent)", "User agent"},
	[D_LINK] = {"Link n.º", "Link #"},
	[D_AFTER] = {"segundos após a entrega", "seconds after delivery"},
	[D_ARRIVED] = {"Pedido recebido em", "Request arrived at"},
	[D_METHOD] = {"Método HTTP", "HTTP method"},
	[D_STATUS] = {"Status", "Status"},
	[D_DIAG] = {"Diagnóstico", "Diagnostic"},
	[D_REMOTE] = {"Servidor remoto", "Remote server"},
	[D_REPORTING] = {"Informado por", "Reported by"},
	[D_FINAL_RCPT] = {"Destinatário informado", "Final recipient"},
	[D_TRANSPORT] = {"Transporte", "Transport"},
	[D_API_KEY] = {"Chave de API n.º", "API key #"},
	[D_TYPE] = {"Tipo", "Type"},
	[D_FIELDS] = {"Campos", "Fields"},
	[D_LAST_ATTEMPT] = {"Última tentativa", "Last attempt"},
	[D_DSN] = {"SHA-256 da notificação de falha", "SHA-256 of the failure notice"},
	[D_FIRST_HIT] = {"Primeiro acesso resumido", "First hit summarized"},
	[D_LAST_HIT] = {"Último acesso resumido", "Last hit summarized"},
	[D_OPENS] = {"Imagem carregada", "Image fetched"},
	[D_CLICKS] = {"Links acessados", "Links followed"},
	[D_ADDRESSES] = {"Endereços IP distintos", "Distinct IP addresses"},
	[D_FOLDED_AFTER] = {"Registrados um a um, por tipo e classificação, os primeiros",
			    "Listed one by one, per kind and classification, the first"},

	[C_HUMAN] = {"navegador (nenhuma regra de máquina)", "browser (no machine rule matched)"},
	[C_PROXY] = {"proxy de e-mail", "mail proxy"},
	[C_SCANNER] = {"programa automático (scanner)", "automated client (scanner)"},
	[R_REJECTED] = {"recusada pelo servidor (5xx)", "refused by the server (5xx)"},
	[R_EXPIRED] = {"prazo de tentativas esgotado", "retry period over"},
	[R_BOUNCED] = {"devolvida (bounce)", "bounced"},

	[S_SEC_EVIDENCE] = {"Evidências e verificação", "Evidence and verification"},
	[S_EVIDENCE_INTRO] = {"Cada evento acima é um registro do log público e só-acréscimo do "
			      "Selo (árvore Merkle, RFC 9162), sob esta raiz assinada pelo operador "
			      "e carimbada no tempo por uma autoridade (RFC 3161).",
			      "Each event above is an entry of Selo's public, append-only log "
			      "(Merkle tree, RFC 9162), under this root signed by the operator and "
			      "timestamped by an authority (RFC 3161)."},
	[S_LOG_ORIGIN] = {"Log (origem)", "Log (origin)"},
	[S_TREE_SIZE] = {"Tamanho da árvore", "Tree size"},
	[S_ROOT] = {"Raiz (SHA-256, base64)", "Root hash (SHA-256, base64)"},
	[S_TST_TIME] = {"Carimbo do tempo RFC 3161", "RFC 3161 timestamp"},
	[S_TSA] = {"Autoridade (TSA)", "Authority (TSA)"},
	[S_TST_UNVERIFIED] = {"(não confere com os certificados do recibo)",
			      "(does not verify with the receipt's certificates)"},
	[S_TST_UNREADABLE] = {"ilegível", "unreadable"},
	[S_VKEY] = {"Chave do log (verificador)", "Log verifier key"},
	[S_HOW_TO] = {"Como verificar", "How to verify"},
	[S_HOW_SELO] = {"Com o Selo, offline:", "With Selo, offline:"},
	[S_HOW_PAGE] = {"Na página de verificação (também pelo código QR), sem enviar o arquivo "
			"a ninguém:",
			"On the verification page (also through the QR code), without sending "
			"the file anywhere:"},
	[S_HOW_OPENSSL] = {"Sem o Selo: extraia o recibo JSON anexado a este PDF (pdfdetach "
			   "-saveall) e siga docs/receipt.md: openssl pkeyutl -verify (assinatura "
			   "do log), openssl ts -verify (carimbo do tempo) e o script "
			   "verify-receipt.py (provas Merkle, mensagem, dados divulgados).",
			   "Without Selo: extract the JSON receipt attached to this PDF (pdfdetach "
			   "-saveall) and follow docs/receipt.md: openssl pkeyutl -verify (the log's "
			   "signature), openssl ts -verify (the timestamp) and the script "
			   "verify-receipt.py (Merkle proofs, message, disclosed values)."},
	[S_HOW_KEYS] = {"Obtenha a chave do log e o certificado da TSA com o operador, não deste "
			"documento.",
			"Get the log key and the TSA's CA certificate from the operator, not from "
			"this document."},
	[S_QR_CAPTION] = {"Verificar", "Verify"},
	[S_CHECKPOINT_UNREADABLE] = {"ponto de verificação ilegível", "unreadable checkpoint"},

	[S_SEC_CONTENT] = {"Texto da notificação, como o destinatário o recebeu",
			   "The notice's text as the recipient received it"},
	[S_CONTENT_HTML] = {"Parte HTML da mensagem convertida em texto. Links rastreados aparecem "
			    "marcados, sem o endereço do rastreador.",
			    "The message's HTML part as text. Tracked links are marked, without "
			    "the tracker's address."},
	[S_CONTENT_PLAIN] = {"Parte de texto simples da mensagem.",
			     "The message's plain-text part."},
	[S_CONTENT_NONE] = {"A mensagem não tem parte de texto legível.",
			    "The message has no readable text part."},
	[S_TRUNCATED] = {"[texto cortado aqui; a mensagem inteira está anexada a este PDF]",
			 "[text cut here; the whole message is attached to this PDF]"},
	[S_TRACKED_LINK] = {"[link rastreado]", "[tracked link]"},
	[S_CONFIRM_LINK] = {"[link de confirmação de recebimento]", "[receipt confirmation link]"},
	[S_IMAGE] = {"imagem", "image"},

	[S_SEC_PROVES] = {"O que este recibo prova", "What this receipt proves"},
	[S_PROVES_1] = {"Cada evento listado é um registro do log público do Selo, incluído na "
			"árvore assinada acima, que existia no horário do carimbo do tempo.",
			"Each event listed is an entry of Selo's public log, included in the "
			"tree signed above, which existed at the timestamp's time."},
	[S_PROVES_2] = {"A mensagem enviada é exatamente a que foi lacrada (SHA-256), assinada "
			"com S/MIME e DKIM; os dados pessoais divulgados conferem com os "
			"compromissos do log.",
			"The message sent is exactly the one sealed (SHA-256), signed with S/MIME "
			"and DKIM; the personal data disclosed match the log's commitments."},
	[S_PROVES_3] = {"\"Entregue\" quer dizer que o servidor de e-mail do destinatário aceitou "
			"a mensagem; não prova que ela chegou à caixa de entrada nem que foi lida.",
			"\"Delivered\" means the recipient's mail server accepted the message; it "
			"does not prove that it reached the inbox or was read."},
	[S_PROVES_4] = {"Uma imagem carregada não prova leitura: proxies e programas carregam "
			"imagens sem que ninguém leia. Acessos de proxy ou programa automático são "
			"identificados como tais, nunca como o destinatário.",
			"A fetched image is not proof of reading: proxies and programs fetch "
			"images without anyone reading. Proxy or automated fetches are labelled as "
			"such, never as the recipient."},
	[S_PROVES_5] = {"A confirmação de recebimento foi feita por alguém com acesso à mensagem; "
			"a pessoa não é identificada.",
			"The receipt confirmation was made by someone with access to the message; "
			"the person is not identified."},
	[S_PROVES_6] = {"O recibo não prova que não haja outros eventos além dos listados, nem o "
			"que o servidor do destinatário fez depois de aceitar a mensagem.",
			"The receipt does not prove that there are no events besides those listed, "
			"nor what the recipient's server did after accepting the message."},
	[S_PROVES_7] = {"Não substitui a citação eletrônica do CPC art. 246, e sozinho não "
			"basta para a notificação prévia do CDC art. 43 §2º (STJ, REsp 2.056.285-RS).",
			"It does not replace electronic court citation (Brazilian CPC art. 246), "
			"and alone it does not satisfy the prior notice of CDC art. 43 §2 (STJ, "
			"REsp 2.056.285-RS)."},

	[S_ATT_JSON] = {"Recibo selo-receipt/v1 (selo verify) do aviso",
			"selo-receipt/v1 receipt (selo verify) of notice"},
	[S_ATT_EML] = {"Mensagem exata enviada (.eml) do aviso",
		       "The exact message sent (.eml) for notice"},
	[S_DOC_SUBJECT] = {"Recibo de notificação eletrônica do aviso",
			   "Electronic notice receipt for notice"},
};

/* ---- the event table: one row per (type, class) ------------------------- */

/* What a timeline row says about an event: its label, the ETSI EN 319
 * 522-1 evidence it stands for (a name, or a note when there is none), and
 * what it proves and does not. The first row whose type matches (and
 * whose class matches, when the row names one) is taken; reason, when
 * set, must equal the entry's "reason". Unknown types get the last row.
 * Why these evidences: Selo's recipient is plain SMTP, a system outside
 * any ERDS, so the hand-off to the recipient's server (and to a relay) is
 * RelayToNonERDS and a final failure RelayToNonERDSFailure (ETSI EN 319
 * 522-1 F.1/F.2); a deferral is not an evidence of its own but part of the
 * final one's transport log; opens, clicks and confirmations have no ETSI
 * evidence (ContentHandover/ContentAccessTracking would claim a retrieval
 * inside an ERDS that did not happen). docs/receipt-pdf-layout.md. */
struct event_kind {
	const char *type;
	const char *cls;        /* NULL: any class */
	const char *reason;     /* NULL: any reason */
	enum str_id label;
	const char *etsi;       /* the evidence's name, or NULL ... */
	enum str_id etsi_note;  /* ... then this note */
	enum str_id proves, not_proves;
};

static const struct event_kind KINDS[] = {
	{EV_SUBMISSION_ACCEPTED, NULL, NULL, L_SUBMITTED, "SubmissionAcceptance", 0, P_SUBMITTED,
	 N_SUBMITTED},
	{EV_CONTENT_SEALED, NULL, NULL, L_SEALED, NULL, E_PART_OF_SUBMISSION, P_SEALED, N_SEALED},
	{EV_RELAY_ACCEPTED, NULL, NULL, L_RELAYED, "RelayToNonERDS", 0, P_RELAYED, N_RELAYED},
	{EV_DELIVERY_ACCEPTED, NULL, NULL, L_DELIVERED, "RelayToNonERDS", 0, P_DELIVERED,
	 N_DELIVERED},
	{EV_DELIVERY_DEFERRED, NULL, NULL, L_DEFERRED, NULL, E_TRANSPORT_LOG, P_DEFERRED,
	 N_DEFERRED},
	{EV_DELIVERY_FAILED, NULL, "bounced", L_BOUNCED, "RelayToNonERDSFailure", 0, P_BOUNCED,
	 N_FAILED},
	{EV_DELIVERY_FAILED, NULL, "rejected", L_FAILED, "RelayToNonERDSFailure", 0, P_FAILED,
	 N_FAILED},
	{EV_DELIVERY_FAILED, NULL, "expired", L_FAILED, "RelayToNonERDSFailure", 0, P_FAILED,
	 N_FAILED},
	{EV_DELIVERY_FAILED, NULL, NULL, L_NOT_SENT, NULL, E_NONE, P_NOT_SENT, N_NOT_SENT},
	{EV_OPENED, "proxy", NULL, L_OPEN_PROXY, NULL, E_NONE, P_OPEN_MACHINE, N_MACHINE},
	{EV_OPENED, "scanner", NULL, L_OPEN_SCANNER, NULL, E_NONE, P_OPEN_MACHINE, N_MACHINE},
	{EV_OPENED, NULL, NULL, L_OPEN_HUMAN, NULL, E_NONE, P_OPEN_HUMAN, N_OPEN},
	{EV_CLICKED, "proxy", NULL, L_CLICK_PROXY, NULL, E_NONE, P_CLICK_MACHINE, N_MACHINE},
	{EV_CLICKED, "scanner", NULL, L_CLICK_SCANNER, NULL, E_NONE, P_CLICK_MACHINE, N_MACHINE},
	{EV_CLICKED, NULL, NULL, L_CLICK_HUMAN, NULL, E_NONE, P_CLICK_HUMAN, N_CLICK},
	{EV_READ_CONFIRMED, "proxy", NULL, L_READ_MACHINE, NULL, E_NONE, P_READ_MACHINE,
	 N_MACHINE},
	{EV_READ_CONFIRMED, "scanner", NULL, L_READ_MACHINE, NULL, E_NONE, P_READ_MACHINE,
	 N_MACHINE},
	{EV_READ_CONFIRMED, NULL, NULL, L_READ, NULL, E_NONE, P_READ, N_READ},
	{"canceled", NULL, NULL, L_CANCELED, NULL, E_NONE, P_CANCELED, N_NOT_SENT},
	{EV_TRACKING_SUMMARY, NULL, NULL, L_SUMMARY, NULL, E_NONE, P_SUMMARY, N_SUMMARY},
	{NULL, NULL, NULL, L_OTHER, NULL, E_NONE, P_OTHER, N_OTHER},
};

/* ---- text fit for a page -------------------------------------------------- */

/* Characters that would make the page read differently from the bytes
 * stored: bidirectional embeddings, overrides and isolates. */
static int bidi_control(long cp)
{
	return (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
	       cp == 0x200e || cp == 0x200f || cp == 0x061c;
}

/* Appends s[0..n) to out as text a page can show: valid UTF-8 (a bad byte
 * becomes U+FFFD), no C0/C1 controls, DEL or bidi controls (a tab becomes a
 * space; a line end stays one when multiline, else a space), at most cap
 * bytes, cut at a character with "…" after it. */
static void put_clean(struct buf *out, const char *s, size_t n, size_t cap, int multiline)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t start = out->len;
	for (size_t i = 0; i < n;) {
		uint32_t u;
		size_t k = utf8_decode(p + i, n - i, &u);
		long cp = k ? (long)u : -1; /* a byte that starts no character: U+FFFD */
		i += k ? k : 1;
		if (out->len - start + 4 > cap) {
			buf_puts(out, "\xe2\x80\xa6");
			return;
		}
		if (cp == '\r' && i < n && p[i] == '\n')
			continue;
		if (cp == '\n' || cp == '\r' || cp == 0x2028 || cp == 0x2029)
			buf_putc(out, multiline ? '\n' : ' ');
		else if (cp == '\t')
			buf_putc(out, ' ');
		else if (cp < 0)
			utf8_put(out, 0xfffd);
		else if (cp >= 0x20 && cp != 0x7f && !(cp >= 0x80 && cp < 0xa0) && !bidi_control(cp))
			utf8_put(out, (uint32_t)cp);
	}
}

static void put_cleans(struct buf *out, const char *s, size_t cap)
{
	if (s)
		put_clean(out, s, strlen(s), cap, 0);
}

/* ---- times: UTC, and São Paulo through the tz database ------------------- */

/* São Paulo's offset comes from GLib's GTimeZone, which reads the IANA tz
 * database (TZif files under TZDIR or /usr/share/zoneinfo) and is safe to
 * use from several threads: no setenv("TZ"), no tzset(), no process-wide
 * state. Brazil kept DST until 2019; the database knows, so a receipt of
 * an old notice shows the offset that applied then. */
static const char ZONE[] = "America/Sao_Paulo";

int receipt_pdf_local_offset(int64_t ms, int *offset_s)
{
	GTimeZone *tz = g_time_zone_new_identifier(ZONE);
	if (!tz)
		return -1;
	gint64 secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
	int iv = g_time_zone_find_interval(tz, G_TIME_TYPE_UNIVERSAL, secs);
	*offset_s = iv >= 0 ? (int)g_time_zone_get_offset(tz, iv) : 0;
	g_time_zone_unref(tz);
	return iv >= 0 ? 0 : -1;
}

static void tm_of(int64_t ms, int64_t shift_s, struct tm *tm)
{
	int64_t secs = (ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000)) + shift_s;
	time_t t = (time_t)secs;
	if (!gmtime_r(&t, tm))
		memset(tm, 0, sizeof(*tm));
}

/* "2026-11-23 18:42:12.006 UTC" */
static void fmt_utc(int64_t ms, char *out, size_t n)
{
	struct tm tm;
	tm_of(ms, 0, &tm);
	snprintf(out, n, "%04d-%02d-%02d %02d:%02d:%02d.%03d UTC", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(((ms % 1000) + 1000) % 1000));
}

/* ---- the receipt, read once ------------------------------------------------ */

struct ev_view {
	json_t *obj;            /* the entry parsed (owned), NULL when it is not an object */
	const char *type;       /* its type, or "" */
	int64_t time_ms;
	int time_ok;
	long long index;
};

/* What the .eml shows, decoded (full form only). */
struct mail {
	struct buf from, subject;
	struct buf body;        /* the text shown: the HTML part as text, or the plain part */
	int body_kind;          /* 0 none, 1 HTML, 2 plain */
	int body_cut;
	int64_t sig_tst_ms;     /* the S/MIME signature's RFC 3161 time, when found */
	int sig_tst_ok;
};

struct rdoc {
	enum lang lang;
	const struct receipt_pdf_opts *o;
	int64_t now_ms;
	json_t *root;
	const char *notice, *issued_at, *vkey, *note, *tst_b64, *msg_sha256;
	json_t *values;                 /* disclosure.values */
	json_t *certs;                  /* log.tsa_certs */
	struct ev_view *ev;
	size_t nev;
	const json_t *submission, *sealed; /* the first of each, parsed */
	uint8_t *eml;                   /* decoded message.eml_base64, full form only */
	size_t eml_len;
	int full;
	struct mail mail;
	GTimeZone *tz;                  /* NULL when the tz database lacks the zone */
	/* the evidence, read from the log object */
	struct checkpoint cp;
	int cp_ok;
	int64_t tst_ms;
	int tst_state;                  /* 0 unreadable, 1 verified, 2 read but not verified */
	char tsa_name[256];
};

static const char *tr(const struct rdoc *d, enum str_id id)
{
	return STR[id][d->lang];
}

/* São Paulo's wall clock at ms, "23/11/2026 15:42:12" (pt-BR) or
 * "2026-11-23 15:42:12" (en), and its offset, "UTC-03:00". */
static void fmt_local(const struct rdoc *d, int64_t ms, char *out, size_t n, char *zone,
		      size_t zn)
{
	zone[0] = '\0';
	if (!d->tz) {
		snprintf(out, n, "%s", tr(d, S_TZ_MISSING));
		return;
	}
	gint64 secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
	int iv = g_time_zone_find_interval(d->tz, G_TIME_TYPE_UNIVERSAL, secs);
	int off = iv >= 0 ? (int)g_time_zone_get_offset(d->tz, iv) : 0;
	struct tm tm;
	tm_of(ms, off, &tm);
	int a = off < 0 ? -off : off;
	snprintf(zone, zn, "UTC%c%02d:%02d", off < 0 ? '-' : '+', a / 3600 % 100, a % 3600 / 60);
	if (d->lang == PT)
		snprintf(out, n, "%02d/%02d/%04d %02d:%02d:%02d", tm.tm_mday, tm.tm_mon + 1,
			 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	else
		snprintf(out, n, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
			 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* "2026-11-23 18:42:12.006 UTC · 23/11/2026 15:42:12 (UTC-03:00) São Paulo" */
static void put_both_times(const struct rdoc *d, struct buf *out, int64_t ms)
{
	char u[48], l[96], z[16];
	fmt_utc(ms, u, sizeof(u));
	fmt_local(d, ms, l, sizeof(l), z, sizeof(z));
	if (d->tz)
		buf_printf(out, "%s \xc2\xb7 %s (%s) %s", u, l, z, tr(d, S_SAO_PAULO));
	else
		buf_printf(out, "%s \xc2\xb7 %s", u, l);
}

static const char *jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* A field's value as the receipt discloses it: a commitment
 * ("sha256:...") becomes its disclosed value, or NULL when this receipt
 * does not disclose it; any other string is itself. */
static const char *disclosed(const struct rdoc *d, const char *v)
{
	if (!v || strncmp(v, "sha256:", 7) != 0)
		return v;
	return json_string_value(json_object_get(d->values, v));
}

/* ---- reading the receipt: the shape this layout needs, else 422 ---------- */

static int bad(struct selo_err *err, const char *what)
{
	return err_set(err, 422, "invalid-receipt",
		       "not a selo-receipt/v1 document: %s (docs/receipt.md)", what);
}

static json_t *member(json_t *o, const char *key, json_type want)
{
	json_t *v = json_object_get(o, key);
	return v && json_typeof(v) == want ? v : NULL;
}

static void read_entry(struct ev_view *e, const char *s, size_t n)
{
	e->type = "";
	e->obj = json_loadb(s, n, JSON_REJECT_DUPLICATES, NULL);
	if (e->obj && !json_is_object(e->obj)) {
		json_decref(e->obj);
		e->obj = NULL;
	}
	if (!e->obj)
		return;
	const char *t = jstr(e->obj, "type"), *when = jstr(e->obj, "time");
	e->type = t ? t : "";
	e->time_ok = when && clock_parse_rfc3339(when, &e->time_ms) == 0;
}

static int read_events(struct rdoc *d, json_t *arr, struct selo_err *err)
{
	size_t n = json_array_size(arr);
	if (n < 1 || n > MAX_EVENTS)
		return bad(err, "events must hold 1 to 10000 events");
	d->ev = xcalloc(n, sizeof(*d->ev));
	d->nev = n;
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_array_get(arr, i), *idx = member(o, "index", JSON_INTEGER);
		json_t *entry = member(o, "entry", JSON_STRING);
		if (!idx || !entry || json_integer_value(idx) < 0 ||
		    json_string_length(entry) > MAX_ENTRY)
			return bad(err, "an event lacks its index or entry");
		d->ev[i].index = (long long)json_integer_value(idx);
		read_entry(&d->ev[i], json_string_value(entry), json_string_length(entry));
		if (!d->submission && !strcmp(d->ev[i].type, EV_SUBMISSION_ACCEPTED))
			d->submission = d->ev[i].obj;
		if (!d->sealed && !strcmp(d->ev[i].type, EV_CONTENT_SEALED))
			d->sealed = d->ev[i].obj;
	}
	return 0;
}

static int read_log(struct rdoc *d, json_t *log, struct selo_err *err)
{
	json_t *vkey = member(log, "verifier_key", JSON_STRING);
	json_t *note = member(log, "checkpoint", JSON_STRING);
	json_t *tst = member(log, "timestamp", JSON_STRING);
	d->certs = member(log, "tsa_certs", JSON_ARRAY);
	if (!vkey || !note || !tst || !d->certs)
		return bad(err, "log needs verifier_key, checkpoint, timestamp and tsa_certs");
	size_t nc = json_array_size(d->certs);
	if (nc < 1 || nc > MAX_CERTS)
		return bad(err, "log.tsa_certs must hold 1 to 8 certificates");
	for (size_t i = 0; i < nc; i++)
		if (!json_is_string(json_array_get(d->certs, i)))
			return bad(err, "log.tsa_certs holds something else than PEM text");
	d->vkey = json_string_value(vkey);
	d->note = json_string_value(note);
	d->tst_b64 = json_string_value(tst);
	return 0;
}

static int read_message(struct rdoc *d, json_t *msg, struct selo_err *err)
{
	json_t *sha = member(msg, "sha256", JSON_STRING), *eml = json_object_get(msg, "eml_base64");
	if (!sha || json_string_length(sha) != 64)
		return bad(err, "message.sha256 must be 64 hex digits");
	d->msg_sha256 = json_string_value(sha);
	if (!eml)
		return 0;
	if (!json_is_string(eml))
		return bad(err, "message.eml_base64 must be base64 text");
	size_t n = json_string_length(eml), cap = base64_decoded_max(n);
	d->eml = xmalloc(cap);
	ssize_t k = base64_decode(json_string_value(eml), n, d->eml, cap);
	if (k < 0)
		return bad(err, "message.eml_base64 is not base64");
	d->eml_len = (size_t)k;
	d->full = 1;
	return 0;
}

static int read_doc(struct rdoc *d, const char *json, size_t len, struct selo_err *err)
{
	if (!json || len > MAX_RECEIPT)
		return bad(err, "empty, or larger than 64 MiB");
	json_error_t jerr;
	d->root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!d->root)
		return bad(err, "not JSON");
	if (!json_is_object(d->root))
		return bad(err, "not a JSON object");
	const char *fmt = jstr(d->root, "format");
	if (!fmt || strcmp(fmt, RECEIPT_FORMAT) != 0)
		return bad(err, "format is not \"selo-receipt/v1\"");
	d->notice = jstr(d->root, "notice");
	d->issued_at = jstr(d->root, "issued_at");
	if (!d->notice || !id_text_valid(d->notice))
		return bad(err, "notice is not a notice id");
	if (!d->issued_at)
		return bad(err, "issued_at is missing");
	json_t *log = member(d->root, "log", JSON_OBJECT), *evs = member(d->root, "events", JSON_ARRAY);
	json_t *msg = member(d->root, "message", JSON_OBJECT);
	json_t *dis = member(d->root, "disclosure", JSON_OBJECT);
	d->values = member(dis, "values", JSON_OBJECT);
	if (!log || !evs || !msg || !d->values)
		return bad(err, "log, events, message or disclosure.values is missing");
	if (read_log(d, log, err) != 0 || read_message(d, msg, err) != 0)
		return -1;
	return read_events(d, evs, err);
}

/* ---- the evidence: checkpoint and timestamps -------------------------------- */

static void read_checkpoint(struct rdoc *d)
{
	struct note_sig sigs[NOTE_MAX_SIGS];
	if (!d->note)
		return;
	size_t textlen = 0, nsigs = 0, len = strlen(d->note);
	struct selo_err e;
	err_clear(&e);
	d->cp_ok = note_parse(d->note, len, &textlen, sigs, &nsigs, &e) == 0 &&
		   checkpoint_parse(d->note, textlen, &d->cp, &e) == 0;
}

/* genTime of a DER TimeStampToken, read without checking anything. */
static int receipt_pdf_token_time(const uint8_t *der, size_t n, int64_t *ms)
{
	const unsigned char *p = der;
	PKCS7 *p7 = d2i_PKCS7(NULL, &p, (long)n);
	TS_TST_INFO *info = p7 ? PKCS7_to_TS_TST_INFO(p7) : NULL;
	const ASN1_GENERALIZEDTIME *gt = info ? TS_TST_INFO_get_time(info) : NULL;
	struct tm tm;
	int rc = -1;
	if (gt && ASN1_TIME_to_tm(gt, &tm) == 1) {
		*ms = (int64_t)timegm(&tm) * 1000;
		rc = 0;
	}
	TS_TST_INFO_free(info);
	PKCS7_free(p7);
	return rc;
}

/* The checkpoint's timestamp: verified against the receipt's own chain
 * (the TSA's certificate first, the last one as the anchor), so the page
 * shows a time and a TSA name only with that said; a token that does not
 * verify shows its time marked as such. Whether the chain is the operator's
 * is for `selo verify --tsa-ca` to say. */
static void read_timestamp(struct rdoc *d)
{
	if (!d->tst_b64 || !d->note)
		return;
	size_t n = strlen(d->tst_b64), cap = base64_decoded_max(n);
	uint8_t *der = xmalloc(cap);
	ssize_t k = base64_decode(d->tst_b64, n, der, cap);
	if (k <= 0) {
		free(der);
		return;
	}
	struct buf all = BUF_INIT;
	size_t nc = json_array_size(d->certs);
	for (size_t i = 0; i < nc; i++)
		buf_puts(&all, json_string_value(json_array_get(d->certs, i)));
	const char *last = json_string_value(json_array_get(d->certs, nc - 1));
	uint8_t digest[32];
	sha256(d->note, strlen(d->note), digest);
	struct selo_err e;
	err_clear(&e);
	if (tsa_verify_token(der, (size_t)k, digest, last, strlen(last), buf_str(&all), all.len,
			     &d->tst_ms, d->tsa_name, sizeof(d->tsa_name), &e) == 0)
		d->tst_state = 1;
	else if (receipt_pdf_token_time(der, (size_t)k, &d->tst_ms) == 0)
		d->tst_state = 2;
	buf_free(&all);
	free(der);
}

/* The RFC 3161 token of an S/MIME signature (DER CMS, smime.p7s): the
 * first signer's unsigned attribute id-aa-timeStampToken, as smime.c
 * writes it (CAdES-T). */
static int receipt_pdf_smime_token_time(const uint8_t *der, size_t n, int64_t *ms)
{
	const unsigned char *p = der;
	CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)n);
	STACK_OF(CMS_SignerInfo) *sis = cms ? CMS_get0_SignerInfos(cms) : NULL;
	CMS_SignerInfo *si = sis && sk_CMS_SignerInfo_num(sis) > 0 ? sk_CMS_SignerInfo_value(sis, 0)
								     : NULL;
	int at = si ? CMS_unsigned_get_attr_by_NID(si, NID_id_smime_aa_timeStampToken, -1) : -1;
	X509_ATTRIBUTE *attr = at >= 0 ? CMS_unsigned_get_attr(si, at) : NULL;
	ASN1_TYPE *t = attr ? X509_ATTRIBUTE_get0_type(attr, 0) : NULL;
	int rc = -1;
	if (t && t->type == V_ASN1_SEQUENCE)
		rc = receipt_pdf_token_time(t->value.sequence->data, (size_t)t->value.sequence->length, ms);
	CMS_ContentInfo_free(cms);
	return rc;
}

/* ---- the message: a small bounded MIME reader ------------------------------- */

/* Where the header section of p[0..n) ends and the body starts (after the
 * empty line, CRLF or LF); n when there is no body. */
static size_t body_offset(const char *p, size_t n)
{
	size_t lim = n < MAX_MIME_HEADER ? n : MAX_MIME_HEADER;
	for (size_t i = 0; i < lim; i++) {
		if (p[i] != '\n')
			continue;
		if (i + 1 < n && p[i + 1] == '\n')
			return i + 2;
		if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n')
			return i + 3;
	}
	return n;
}

/* The first header field called name in h[0..n), unfolded (line ends of
 * continuation lines dropped, their white space kept), trimmed, into out
 * (at most CAP_LINE bytes). 1 found, 0 not. */
static int header_value(const char *h, size_t n, const char *name, struct buf *out)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < n;) {
		const char *eol = memchr(h + i, '\n', n - i);
		size_t end = eol ? (size_t)(eol - h) : n;
		if (end - i > nl && h[i + nl] == ':' && !strncasecmp(h + i, name, nl)) {
			size_t v = i + nl + 1;
			for (;;) {
				size_t e = end;
				if (e > v && h[e - 1] == '\r')
					e--;
				for (size_t j = v; j < e && out->len < CAP_LINE; j++)
					buf_putc(out, h[j]);
				if (end >= n || end + 1 >= n || (h[end + 1] != ' ' && h[end + 1] != '\t'))
					break;
				v = end + 1;
				eol = memchr(h + v, '\n', n - v);
				end = eol ? (size_t)(eol - h) : n;
			}
			if (!out->len)
				return 1; /* an empty value ("Subject:") */
			size_t a = 0;
			while (a < out->len && (out->data[a] == ' ' || out->data[a] == '\t'))
				a++;
			memmove(out->data, out->data + a, out->len - a + 1);
			out->len -= a;
			while (out->len && (out->data[out->len - 1] == ' ' || out->data[out->len - 1] == '\t'))
				out->data[--out->len] = '\0';
			return 1;
		}
		i = end + 1;
	}
	return 0;
}

/* A parameter (boundary, charset, name) of a Content-Type value, quoted
 * or not, into out (lowercased when lower). */
static void header_param(const char *v, const char *param, char *out, size_t n, int lower)
{
	size_t pl = strlen(param);
	out[0] = '\0';
	for (const char *p = strchr(v, ';'); p; p = strchr(p + 1, ';')) {
		const char *q = p + 1;
		while (*q == ' ' || *q == '\t')
			q++;
		if (strncasecmp(q, param, pl) != 0 || q[pl] != '=')
			continue;
		q += pl + 1;
		int quoted = *q == '"';
		q += quoted;
		size_t k = 0;
		while (*q && k + 1 < n && (quoted ? *q != '"' : (*q != ';' && *q != ' ' && *q != '\t'))) {
			char c = *q++;
			out[k++] = lower ? (char)tolower((unsigned char)c) : c;
		}
		out[k] = '\0';
		return;
	}
}

/* The media type of a Content-Type value, lowercased ("text/plain" when
 * there is none, as RFC 2045 says). */
static void media_type(const char *v, char *out, size_t n)
{
	size_t k = 0;
	while (*v == ' ')
		v++;
	while (*v && *v != ';' && *v != ' ' && k + 1 < n)
		out[k++] = (char)tolower((unsigned char)*v++);
	out[k] = '\0';
	if (!k)
		snprintf(out, n, "text/plain");
}

/* A part's body decoded per its Content-Transfer-Encoding; -1 when base64
 * does not decode. */
static int body_decode(const char *s, size_t n, const char *cte, struct buf *out)
{
	if (!strcasecmp(cte, "quoted-printable")) {
		qp_decode(s, n, out);
		return 0;
	}
	if (!strcasecmp(cte, "base64")) {
		buf_reserve(out, base64_decoded_max(n) + 1);
		ssize_t k = base64_decode_mime(s, n, (uint8_t *)out->data + out->len,
					       out->cap - out->len - 1);
		if (k < 0)
			return -1;
		out->len += (size_t)k;
		out->data[out->len] = '\0';
		return 0;
	}
	buf_append(out, s, n);
	return 0;
}

/* Bytes in charset as UTF-8 (ISO-8859-1 and windows-1252's Latin-1 range
 * converted; UTF-8, ASCII and anything else passed on, put_clean repairs). */
static void to_utf8(const char *s, size_t n, const char *charset, struct buf *out)
{
	int latin1 = !strcasecmp(charset, "iso-8859-1") || !strcasecmp(charset, "latin1") ||
		     !strcasecmp(charset, "windows-1252") || !strcasecmp(charset, "iso-8859-15");
	if (!latin1) {
		buf_append(out, s, n);
		return;
	}
	for (size_t i = 0; i < n; i++)
		utf8_put(out, (unsigned char)s[i]);
}

/* One RFC 2047 encoded word at s ("=?charset?B|Q?text?="): decoded into
 * out, returns its length, or 0 when s does not start one. */
static size_t encoded_word(const char *s, size_t n, struct buf *out)
{
	if (n < 8 || s[0] != '=' || s[1] != '?')
		return 0;
	const char *q1 = memchr(s + 2, '?', n - 2);
	if (!q1 || q1 + 3 >= s + n || q1[2] != '?')
		return 0;
	char enc = (char)toupper((unsigned char)q1[1]);
	const char *text = q1 + 3, *end = NULL;
	for (const char *p = text; p + 1 < s + n; p++)
		if (p[0] == '?' && p[1] == '=') {
			end = p;
			break;
		}
	if (!end || (enc != 'B' && enc != 'Q') || q1 - (s + 2) >= 32)
		return 0;
	char charset[32];
	snprintf(charset, sizeof(charset), "%.*s", (int)(q1 - (s + 2)), s + 2);
	char *star = strchr(charset, '*'); /* RFC 2231 language suffix */
	if (star)
		*star = '\0';
	struct buf raw = BUF_INIT;
	if (enc == 'B') {
		if (body_decode(text, (size_t)(end - text), "base64", &raw) != 0) {
			buf_free(&raw);
			return 0;
		}
	} else {
		for (const char *p = text; p < end; p++) {
			if (*p == '_')
				buf_putc(&raw, ' ');
			else if (*p == '=' && p + 2 < end && hex_digit_value(p[1]) >= 0 && hex_digit_value(p[2]) >= 0) {
				buf_putc(&raw, (char)(hex_digit_value(p[1]) << 4 | hex_digit_value(p[2])));
				p += 2;
			} else
				buf_putc(&raw, *p);
		}
	}
	to_utf8(buf_str(&raw), raw.len, charset, out);
	buf_free(&raw);
	return (size_t)(end + 2 - s);
}

/* An unstructured header value with its encoded words decoded (white
 * space between two encoded words dropped, RFC 2047 §6.2). */
static void header_decode(const char *s, size_t n, struct buf *out)
{
	size_t gap_start = 0, pending_gap = 0;
	int after_word = 0;
	for (size_t i = 0; i < n;) {
		size_t k = encoded_word(s + i, n - i, out);
		if (k) {
			i += k;
			after_word = 1;
			pending_gap = 0;
			continue;
		}
		if (after_word && (s[i] == ' ' || s[i] == '\t')) {
			if (!pending_gap)
				gap_start = i;
			pending_gap++;
			i++;
			continue;
		}
		if (pending_gap)
			buf_append(out, s + gap_start, pending_gap);
		pending_gap = 0;
		after_word = 0;
		buf_putc(out, s[i++]);
	}
}

/* ---- HTML as text ------------------------------------------------------------ */

/* ISO-8859-1's named entities, U+00A0 to U+00FF in order (HTML 4). */
static const char *const LATIN1_ENTITIES[96] = {
	"nbsp", "iexcl", "cent", "pound", "curren", "yen", "brvbar", "sect", "uml", "copy",
	"ordf", "laquo", "not", "shy", "reg", "macr", "deg", "plusmn", "sup2", "sup3", "acute",
	"micro", "para", "middot", "cedil", "sup1", "ordm", "raquo", "frac14", "frac12", "frac34",
	"iquest", "Agrave", "Aacute", "Acirc", "Atilde", "Auml", "Aring", "AElig", "Ccedil",
	"Egrave", "Eacute", "Ecirc", "Euml", "Igrave", "Iacute", "Icirc", "Iuml", "ETH", "Ntilde",
	"Ograve", "Oacute", "Ocirc", "Otilde", "Ouml", "times", "Oslash", "Ugrave", "Uacute",
	"Ucirc", "Uuml", "Yacute", "THORN", "szlig", "agrave", "aacute", "acirc", "atilde", "auml",
	"aring", "aelig", "ccedil", "egrave", "eacute", "ecirc", "euml", "igrave", "iacute",
	"icirc", "iuml", "eth", "ntilde", "ograve", "oacute", "ocirc", "otilde", "ouml", "divide",
	"oslash", "ugrave", "uacute", "ucirc", "uuml", "yacute", "thorn", "yuml"};

static const struct {
	const char *name;
	long cp;
} OTHER_ENTITIES[] = {
	{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''},
	{"ndash", 0x2013}, {"mdash", 0x2014}, {"lsquo", 0x2018}, {"rsquo", 0x2019},
	{"ldquo", 0x201c}, {"rdquo", 0x201d}, {"bull", 0x2022}, {"hellip", 0x2026},
	{"euro", 0x20ac}, {"trade", 0x2122},
};

/* The entity at s ("&name;", "&#123;", "&#x7b;"): its code point and
 * length, or -1 when s does not start one. */
static long entity(const char *s, size_t n, size_t *len)
{
	size_t end = 1;
	while (end < n && end < 12 && s[end] != ';')
		end++;
	if (end >= n || s[end] != ';' || end < 2)
		return -1;
	*len = end + 1;
	if (s[1] == '#') {
		int hex = end > 2 && (s[2] == 'x' || s[2] == 'X');
		long cp = 0;
		size_t i = hex ? 3 : 2;
		if (i >= end)
			return -1;
		for (; i < end; i++) {
			int v = hex ? hex_digit_value(s[i]) : (s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : -1);
			if (v < 0)
				return -1;
			cp = cp * (hex ? 16 : 10) + v;
		}
		return cp <= 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? 0xfffd : cp;
	}
	size_t nl = end - 1;
	for (size_t i = 0; i < 96; i++)
		if (strlen(LATIN1_ENTITIES[i]) == nl && !memcmp(s + 1, LATIN1_ENTITIES[i], nl))
			return i == 0 ? ' ' : 0xa0 + (long)i;
	for (size_t i = 0; i < sizeof(OTHER_ENTITIES) / sizeof(OTHER_ENTITIES[0]); i++)
		if (strlen(OTHER_ENTITIES[i].name) == nl && !memcmp(s + 1, OTHER_ENTITIES[i].name, nl))
			return OTHER_ENTITIES[i].cp;
	return -1;
}

/* Text with entities decoded, white space collapsed, into out. */
static void put_html_text(struct buf *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = 1;
		long cp = s[i] == '&' ? entity(s + i, n - i, &k) : -1;
		if (cp >= 0) {
			utf8_put(out, (uint32_t)cp);
			i += k;
		} else {
			buf_putc(out, s[i++]);
		}
	}
}

struct h2t {
	const struct rdoc *d;
	struct buf *out;
	int nl;                 /* line ends owed before the next text (0..2) */
	int space;              /* a space owed */
	int at_line_start;
	struct buf href;        /* the open <a>'s target */
	size_t a_text;          /* where the open <a>'s text starts in out */
	int in_a;
};

static void h2t_flush(struct h2t *h)
{
	if (h->out->len == 0) {
		h->nl = h->space = 0;
		return;
	}
	if (h->nl) {
		while (h->out->len && h->out->data[h->out->len - 1] == ' ')
			h->out->data[--h->out->len] = '\0';
		for (int i = 0; i < h->nl; i++)
			buf_putc(h->out, '\n');
		h->at_line_start = 1;
	} else if (h->space && !h->at_line_start) {
		buf_putc(h->out, ' ');
	}
	h->nl = h->space = 0;
}

static void h2t_text(struct h2t *h, const char *s, size_t n)
{
	struct buf t = BUF_INIT;
	put_html_text(&t, s, n);
	for (size_t i = 0; i < t.len; i++) {
		char c = t.data[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f') {
			h->space = 1;
			continue;
		}
		h2t_flush(h);
		buf_putc(h->out, c);
		h->at_line_start = 0;
	}
	buf_free(&t);
}

static void h2t_break(struct h2t *h, int lines)
{
	if (h->nl < lines)
		h->nl = lines;
}

/* An attribute's value in a tag's text (name="v", 'v' or v), entities
 * decoded, into out. */
static void tag_attr(const char *t, size_t n, const char *name, struct buf *out)
{
	size_t nl = strlen(name);
	for (size_t i = 1; i + nl < n; i++) {
		if ((t[i - 1] != ' ' && t[i - 1] != '\t' && t[i - 1] != '\n' && t[i - 1] != '\r') ||
		    strncasecmp(t + i, name, nl) != 0)
			continue;
		size_t j = i + nl;
		while (j < n && t[j] == ' ')
			j++;
		if (j >= n || t[j] != '=')
			continue;
		j++;
		while (j < n && t[j] == ' ')
			j++;
		char q = j < n && (t[j] == '"' || t[j] == '\'') ? t[j] : 0;
		size_t v = j + (q != 0), e = v;
		while (e < n && (q ? t[e] != q : (t[e] != ' ' && t[e] != '>')))
			e++;
		if (e - v <= CAP_VALUE * 4)
			put_html_text(out, t + v, e - v);
		return;
	}
}

/* Tracker links (…/c/TOKEN, …/r/TOKEN, …/o/TOKEN.gif, docs/tracking.md):
 * shown as what they are, never as a URL a reader could follow and so
 * record a click the recipient never made. 'c', 'r' or 0. */
static char receipt_pdf_tracker_link(const char *url)
{
	static const char *const kinds = "cro";
	for (const char *k = kinds; *k; k++) {
		char pat[4] = {'/', *k, '/', '\0'};
		const char *p = strstr(url, pat);
		if (!p)
			continue;
		p += 3;
		size_t n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
		if (n >= 20 && (p[n] == '\0' || !strcmp(p + n, ".gif")))
			return *k;
	}
	return 0;
}

static void h2t_link_end(struct h2t *h)
{
	h->in_a = 0;
	if (!h->href.len)
		return;
	char kind = receipt_pdf_tracker_link(buf_str(&h->href));
	const char *text = h->out->data ? h->out->data + h->a_text : "";
	if (!kind && !strcmp(text, buf_str(&h->href)))
		return; /* the link's text is its target */
	h->space = 1;
	h2t_flush(h);
	if (kind == 'c')
		buf_puts(h->out, tr(h->d, S_TRACKED_LINK));
	else if (kind)
		buf_puts(h->out, tr(h->d, S_CONFIRM_LINK));
	else
		buf_printf(h->out, "<%s>", buf_str(&h->href));
	h->at_line_start = 0;
}

static int tag_is(const char *name, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(name, *list))
			return 1;
	return 0;
}

/* One tag t[0..n) ("<...>"): the breaks, links and images it makes. */
static void h2t_tag(struct h2t *h, const char *t, size_t n)
{
	static const char *const para[] = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "table",
					   "ul", "ol", "blockquote", "pre", "section", "article",
					   "header", "footer", "center", "form", NULL};
	static const char *const line[] = {"br", "tr", "li", "hr", "dt", "dd", NULL};
	size_t i = 1;
	int closing = i < n && t[i] == '/';
	i += closing;
	char name[16];
	size_t k = 0;
	while (i < n && k + 1 < sizeof(name) && isalnum((unsigned char)t[i]))
		name[k++] = (char)tolower((unsigned char)t[i++]);
	name[k] = '\0';
	if (tag_is(name, para))
		h2t_break(h, 2);
	else if (tag_is(name, line))
		h2t_break(h, 1);
	else if (!strcmp(name, "td") || !strcmp(name, "th"))
		h->space = 1;
	if (!strcmp(name, "li") && !closing) {
		h2t_flush(h);
		buf_puts(h->out, "\xe2\x80\xa2 ");
	} else if (!strcmp(name, "a") && !closing) {
		buf_reset(&h->href);
		tag_attr(t, n, "href", &h->href);
		h2t_flush(h);
		h->a_text = h->out->len;
		h->in_a = 1;
	} else if (!strcmp(name, "a") && h->in_a) {
		h2t_link_end(h);
	} else if (!strcmp(name, "img")) {
		struct buf alt = BUF_INIT, w = BUF_INIT;
		tag_attr(t, n, "alt", &alt);
		tag_attr(t, n, "width", &w);
		if (alt.len && strcmp(buf_str(&w), "1") != 0) {
			h->space = 1;
			h2t_flush(h);
			buf_printf(h->out, "[%s: %s]", tr(h->d, S_IMAGE), buf_str(&alt));
			h->at_line_start = 0;
		}
		buf_free(&alt);
		buf_free(&w);
	}
}

/* Where the element whose content is never shown (script, style, head,
 * title) ends: after its closing tag, or n. */
static size_t skip_element(const char *s, size_t n, size_t i, const char *name)
{
	size_t nl = strlen(name);
	for (; i + 2 + nl <= n; i++)
		if (s[i] == '<' && s[i + 1] == '/' && !strncasecmp(s + i + 2, name, nl)) {
			const char *gt = memchr(s + i, '>', n - i);
			return gt ? (size_t)(gt - s) + 1 : n;
		}
	return n;
}

/* The HTML part as text a person reads: tags dropped, paragraphs and line
 * breaks kept, entities decoded, link targets after the link text (tracker
 * links marked instead), image alternatives kept, pixels dropped. */
static void html_to_text(const struct rdoc *d, const char *s, size_t n, struct buf *out)
{
	struct h2t h = {.d = d, .out = out, .at_line_start = 1, .href = BUF_INIT};
	static const char *const hidden[] = {"script", "style", "head", "title", NULL};
	size_t text = 0;
	for (size_t i = 0; i < n && out->len < CAP_BODY;) {
		if (s[i] != '<') {
			i++;
			continue;
		}
		h2t_text(&h, s + text, i - text);
		size_t end;
		if (i + 3 < n && !strncmp(s + i, "<!--", 4)) {
			const char *c = NULL;
			for (size_t j = i + 4; j + 2 < n && !c; j++)
				if (!strncmp(s + j, "-->", 3))
					c = s + j;
			end = c ? (size_t)(c - s) + 3 : n;
		} else {
			const char *gt = memchr(s + i, '>', n - i);
			end = gt ? (size_t)(gt - s) + 1 : n;
			h2t_tag(&h, s + i, end - i);
			char name[16];
			size_t k = 0;
			for (size_t j = i + 1; j < end && k + 1 < sizeof(name) && isalnum((unsigned char)s[j]); j++)
				name[k++] = (char)tolower((unsigned char)s[j]);
			name[k] = '\0';
			if (tag_is(name, hidden))
				end = skip_element(s, n, end, name);
		}
		i = text = end;
	}
	if (text < n && out->len < CAP_BODY)
		h2t_text(&h, s + text, n - text);
	if (h.in_a)
		h2t_link_end(&h);
	buf_free(&h.href);
}

/* ---- walking the .eml ---------------------------------------------------------- */

struct part_ref {
	const char *body;
	size_t len;
	char cte[32], charset[32];
};

struct mime_scan {
	struct part_ref text, html, p7s;
	int have_text, have_html, have_p7s;
	int parts;
};

static void receipt_pdf_mime_walk(struct mime_scan *s, const char *p, size_t n, int depth);

/* Is line[0..n) (with its line end) a delimiter line of boundary bnd:
 * "--bnd", maybe "--", then only white space (RFC 2046 §5.1.1)? */
static int delimiter(const char *line, size_t n, const char *bnd, size_t bl)
{
	if (n < 2 + bl || line[0] != '-' || line[1] != '-' || memcmp(line + 2, bnd, bl) != 0)
		return 0;
	size_t i = 2 + bl;
	if (i + 1 < n && line[i] == '-' && line[i + 1] == '-')
		i += 2;
	for (; i < n; i++)
		if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r' && line[i] != '\n')
			return 0;
	return 1;
}

/* Each body part between the delimiters "--bnd" of a multipart body. */
static void multipart_each(struct mime_scan *s, const char *p, size_t n, const char *bnd,
			   int depth)
{
	size_t bl = strlen(bnd), start = 0;
	int open = 0;
	for (size_t i = 0; i < n;) {
		const char *eol = memchr(p + i, '\n', n - i);
		size_t next = eol ? (size_t)(eol - p) + 1 : n;
		if (delimiter(p + i, next - i, bnd, bl)) {
			int last = next - i >= 4 + bl && p[i + 2 + bl] == '-' && p[i + 3 + bl] == '-';
			if (open) {
				size_t end = i;
				if (end > start && p[end - 1] == '\n')
					end--;
				if (end > start && p[end - 1] == '\r')
					end--;
				receipt_pdf_mime_walk(s, p + start, end - start, depth + 1);
			}
			if (last)
				return;
			open = 1;
			start = next;
		}
		i = next;
	}
}

static void part_keep(struct part_ref *r, int *have, const char *body, size_t len,
		      const char *cte, const char *charset)
{
	if (*have)
		return;
	*have = 1;
	r->body = body;
	r->len = len;
	snprintf(r->cte, sizeof(r->cte), "%s", cte);
	snprintf(r->charset, sizeof(r->charset), "%s", charset);
}

/* Finds the first text/plain and text/html parts that are not
 * attachments, and the S/MIME signature, at most MAX_MIME_DEPTH deep and
 * MAX_MIME_PARTS parts in all. */
static void receipt_pdf_mime_walk(struct mime_scan *s, const char *p, size_t n, int depth)
{
	if (depth > MAX_MIME_DEPTH || ++s->parts > MAX_MIME_PARTS)
		return;
	size_t off = body_offset(p, n);
	struct buf ct = BUF_INIT, cte = BUF_INIT, disp = BUF_INIT;
	header_value(p, off, "Content-Type", &ct);
	header_value(p, off, "Content-Transfer-Encoding", &cte);
	header_value(p, off, "Content-Disposition", &disp);
	char type[64], bnd[128], charset[32];
	media_type(buf_str(&ct), type, sizeof(type));
	header_param(buf_str(&ct), "boundary", bnd, sizeof(bnd), 0);
	header_param(buf_str(&ct), "charset", charset, sizeof(charset), 1);
	int attachment = !strncasecmp(buf_str(&disp), "attachment", 10);
	if (!strncmp(type, "multipart/", 10) && bnd[0])
		multipart_each(s, p + off, n - off, bnd, depth);
	else if (!strcmp(type, "text/plain") && !attachment)
		part_keep(&s->text, &s->have_text, p + off, n - off, buf_str(&cte), charset);
	else if (!strcmp(type, "text/html") && !attachment)
		part_keep(&s->html, &s->have_html, p + off, n - off, buf_str(&cte), charset);
	else if (!strcmp(type, "application/pkcs7-signature") ||
		 !strcmp(type, "application/x-pkcs7-signature"))
		part_keep(&s->p7s, &s->have_p7s, p + off, n - off, buf_str(&cte), "");
	buf_free(&ct);
	buf_free(&cte);
	buf_free(&disp);
}

/* A text part's body as UTF-8, or -1 when it does not decode. */
static int part_text(const struct part_ref *r, struct buf *out)
{
	struct buf raw = BUF_INIT;
	int rc = body_decode(r->body, r->len, r->cte, &raw);
	if (rc == 0)
		to_utf8(buf_str(&raw), raw.len, r->charset[0] ? r->charset : "utf-8", out);
	buf_free(&raw);
	return rc;
}

/* The body shown: the HTML part as text (what most clients show), else
 * the plain part. */
static void mail_body(const struct rdoc *d, struct mail *m, const struct mime_scan *s)
{
	struct buf raw = BUF_INIT, text = BUF_INIT;
	if (s->have_html && part_text(&s->html, &raw) == 0) {
		html_to_text(d, buf_str(&raw), raw.len, &text);
		m->body_kind = 1;
	} else if (s->have_text && part_text(&s->text, &raw) == 0) {
		buf_append(&text, buf_str(&raw), raw.len);
		m->body_kind = 2;
	}
	m->body_cut = text.len > CAP_BODY;
	put_clean(&m->body, buf_str(&text), text.len, CAP_BODY, 1);
	buf_free(&raw);
	buf_free(&text);
}

/* A From value's quoted display name without its quotes and backslash
 * escapes: `"Cobranças \"X\"" <a@b>` reads `Cobranças "X" <a@b>`. */
static void unquote_display(struct buf *b)
{
	if (b->len < 2 || b->data[0] != '"')
		return;
	struct buf t = BUF_INIT;
	size_t i = 1;
	for (; i < b->len && b->data[i] != '"'; i++) {
		if (b->data[i] == '\\' && i + 1 < b->len)
			i++;
		buf_putc(&t, b->data[i]);
	}
	if (i < b->len) {
		buf_append(&t, b->data + i + 1, b->len - i - 1);
		buf_reset(b);
		buf_append(b, buf_str(&t), t.len);
	}
	buf_free(&t);
}

static void read_mail(struct rdoc *d)
{
	struct mail *m = &d->mail;
	const char *p = (const char *)d->eml;
	size_t off = body_offset(p, d->eml_len);
	struct buf v = BUF_INIT;
	if (header_value(p, off, "From", &v)) {
		header_decode(buf_str(&v), v.len, &m->from);
		unquote_display(&m->from);
	}
	buf_reset(&v);
	if (header_value(p, off, "Subject", &v))
		header_decode(buf_str(&v), v.len, &m->subject);
	buf_free(&v);
	struct mime_scan s;
	memset(&s, 0, sizeof(s));
	receipt_pdf_mime_walk(&s, p, d->eml_len, 0);
	mail_body(d, m, &s);
	struct buf der = BUF_INIT;
	if (s.have_p7s && body_decode(s.p7s.body, s.p7s.len, s.p7s.cte, &der) == 0)
		m->sig_tst_ok = receipt_pdf_smime_token_time((const uint8_t *)buf_str(&der), der.len,
						 &m->sig_tst_ms) == 0;
	buf_free(&der);
}

/* ---- pages: recorded one by one, numbered when all are known ------------------- */

enum font { F_BODY, F_BOLD, F_SMALL, F_SMALL_BOLD, F_MONO, F_LABEL, F_HEAD, F_TITLE, F_COUNT };

static const char *const FONT_SPEC[F_COUNT] = {
	[F_BODY] = "DejaVu Sans 8.5",
	[F_BOLD] = "DejaVu Sans Bold 8.5",
	[F_SMALL] = "DejaVu Sans 7.5",
	[F_SMALL_BOLD] = "DejaVu Sans Bold 7.5",
	[F_MONO] = "DejaVu Sans Mono 7",
	[F_LABEL] = "DejaVu Sans Bold 9",
	[F_HEAD] = "DejaVu Sans Bold 11.5",
	[F_TITLE] = "DejaVu Sans Bold 16",
};

/* Each page is drawn into its own cairo recording surface, so that the
 * footer ("página X de Y") can be added once the number of pages is known
 * and the PDF written in one pass (pages_to_pdf). */
struct pager {
	PangoContext *pc;
	PangoFontDescription *font[F_COUNT];
	cairo_surface_t **page;
	size_t npage, cap;
	cairo_t *cr;
	double y;
	int failed;
	/* the header a table repeats at the top of each page it runs onto */
	void (*repeat)(struct pager *p, const struct rdoc *d);
	const struct rdoc *repeat_doc;
};

static void gray(cairo_t *cr, double v)
{
	cairo_set_source_rgb(cr, v, v, v);
}

/* A new page; on failure (too many pages, no memory) p->failed is set and
 * drawing goes on over the current page, so callers never see a NULL
 * context: the result is thrown away. */
static int page_new(struct pager *p)
{
	if (p->npage >= MAX_PAGES)
		p->failed = 1;
	if (!p->failed && p->npage == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 8;
		p->page = xreallocarray(p->page, p->cap, sizeof(*p->page));
	}
	p->y = TOP;
	if (p->failed)
		return -1;
	if (p->cr) {
		if (cairo_status(p->cr) != CAIRO_STATUS_SUCCESS)
			p->failed = 1;
		cairo_destroy(p->cr);
	}
	cairo_rectangle_t ext = {0, 0, PAGE_W, PAGE_H};
	p->page[p->npage++] = cairo_recording_surface_create(CAIRO_CONTENT_COLOR_ALPHA, &ext);
	p->cr = cairo_create(p->page[p->npage - 1]);
	if (p->repeat)
		p->repeat(p, p->repeat_doc);
	return 0;
}

/* Makes room for h points: a new page when they do not fit here (and the
 * page is not a fresh one, which takes whatever comes). */
static void need(struct pager *p, double h)
{
	if (p->y + h > BOTTOM && p->y > TOP + 30)
		page_new(p);
}

/* Text with ranges in other fonts and colours, for one pango layout. */
struct rich {
	struct buf text;
	PangoAttrList *attrs;
};

static void rich_init(struct rich *r)
{
	memset(&r->text, 0, sizeof(r->text));
	r->attrs = pango_attr_list_new();
}

static void rich_free(struct rich *r)
{
	buf_free(&r->text);
	pango_attr_list_unref(r->attrs);
}

static void rich_mark(struct rich *r, const struct pager *p, size_t start, enum font f, double g)
{
	if (r->text.len == start)
		return;
	PangoAttribute *a = pango_attr_font_desc_new(p->font[f]);
	a->start_index = (guint)start;
	a->end_index = (guint)r->text.len;
	pango_attr_list_insert(r->attrs, a);
	if (g > 0) {
		guint16 v = (guint16)(g * 65535);
		a = pango_attr_foreground_new(v, v, v);
		a->start_index = (guint)start;
		a->end_index = (guint)r->text.len;
		pango_attr_list_insert(r->attrs, a);
	}
}

/* Our own words (trusted, from STR) in font f, gray level g (0 black). */
static void rich_add(struct rich *r, const struct pager *p, enum font f, double g, const char *s)
{
	size_t start = r->text.len;
	buf_puts(&r->text, s);
	rich_mark(r, p, start, f, g);
}

/* A value from the receipt: cleaned and capped. */
static void rich_val(struct rich *r, const struct pager *p, enum font f, const char *s, size_t cap)
{
	size_t start = r->text.len;
	if (s)
		put_clean(&r->text, s, strlen(s), cap, 0);
	rich_mark(r, p, start, f, 0);
}

static PangoLayout *layout_of(struct pager *p, const struct rich *r, enum font base, double width)
{
	PangoLayout *l = pango_layout_new(p->pc);
	pango_layout_set_font_description(l, p->font[base]);
	pango_layout_set_width(l, (int)(width * PANGO_SCALE));
	pango_layout_set_wrap(l, PANGO_WRAP_WORD_CHAR);
	pango_layout_set_text(l, buf_str(&r->text), (int)r->text.len);
	pango_layout_set_attributes(l, r->attrs);
	return l;
}

static PangoLayout *layout_text(struct pager *p, enum font f, const char *s, double width)
{
	struct rich r;
	rich_init(&r);
	rich_add(&r, p, f, 0, s);
	PangoLayout *l = layout_of(p, &r, f, width);
	rich_free(&r);
	return l;
}

static double height_of(PangoLayout *l)
{
	int w, h;
	pango_layout_get_size(l, &w, &h);
	return (double)h / PANGO_SCALE;
}

static void draw_at(struct pager *p, PangoLayout *l, double x, double y)
{
	gray(p->cr, 0);
	cairo_move_to(p->cr, x, y);
	pango_cairo_show_layout(p->cr, l);
}

/* A layout that may be longer than a page, line by line, breaking pages
 * between lines. */
static void flow(struct pager *p, PangoLayout *l, double x)
{
	PangoLayoutIter *it = pango_layout_get_iter(l);
	do {
		int top, bottom;
		pango_layout_iter_get_line_yrange(it, &top, &bottom);
		double h = (double)(bottom - top) / PANGO_SCALE;
		need(p, h);
		if (p->failed)
			break;
		double baseline = (double)(pango_layout_iter_get_baseline(it) - top) / PANGO_SCALE;
		gray(p->cr, 0);
		cairo_move_to(p->cr, x, p->y + baseline);
		pango_cairo_show_layout_line(p->cr, pango_layout_iter_get_line_readonly(it));
		p->y += h;
	} while (pango_layout_iter_next_line(it));
	pango_layout_iter_free(it);
}

/* A paragraph of rich text across the content width, flowing. */
static void para(struct pager *p, const struct rich *r, enum font base, double after)
{
	PangoLayout *l = layout_of(p, r, base, CONTENT_W);
	flow(p, l, MARGIN_X);
	g_object_unref(l);
	p->y += after;
}

static void para_text(struct pager *p, enum font f, const char *s, double after)
{
	struct rich r;
	rich_init(&r);
	rich_add(&r, p, f, 0, s);
	para(p, &r, f, after);
	rich_free(&r);
}

static void section(struct pager *p, const char *title)
{
	PangoLayout *l = layout_text(p, F_HEAD, title, CONTENT_W);
	double h = height_of(l);
	need(p, h + 60); /* a heading never ends a page */
	p->y += 6;
	draw_at(p, l, MARGIN_X, p->y);
	p->y += h + 2;
	gray(p->cr, 0.55);
	cairo_set_line_width(p->cr, 0.6);
	cairo_move_to(p->cr, MARGIN_X, p->y);
	cairo_line_to(p->cr, MARGIN_X + CONTENT_W, p->y);
	cairo_stroke(p->cr);
	p->y += 5;
	g_object_unref(l);
}

/* A label and its value side by side; the row is kept on one page. */
static void kv_row(struct pager *p, const char *label, const struct rich *value, double width)
{
	PangoLayout *ll = layout_text(p, F_SMALL_BOLD, label, KV_LABEL_W - GUTTER);
	PangoLayout *vl = layout_of(p, value, F_BODY, width - KV_LABEL_W);
	double h = height_of(vl) > height_of(ll) ? height_of(vl) : height_of(ll);
	need(p, h + 3);
	draw_at(p, ll, MARGIN_X, p->y + 0.8);
	draw_at(p, vl, MARGIN_X + KV_LABEL_W, p->y);
	p->y += h + 3;
	g_object_unref(ll);
	g_object_unref(vl);
}

/* kv_row for one value from the receipt, in font f. */
static void kv(struct pager *p, const char *label, const char *value, enum font f, double width)
{
	struct rich r;
	rich_init(&r);
	rich_val(&r, p, f, value, CAP_LINE);
	kv_row(p, label, &r, width);
	rich_free(&r);
}

/* ---- page 1: title and the notice ---------------------------------------------- */

static void title_block(struct pager *p, const struct rdoc *d)
{
	PangoLayout *l = layout_text(p, F_TITLE, tr(d, S_TITLE), CONTENT_W);
	draw_at(p, l, MARGIN_X, p->y);
	p->y += height_of(l) + 4;
	g_object_unref(l);
	struct rich r;
	rich_init(&r);
	rich_add(&r, p, F_BOLD, 0, tr(d, S_NOTICE));
	rich_add(&r, p, F_BOLD, 0, " ");
	rich_val(&r, p, F_BOLD, d->notice, 64);
	rich_add(&r, p, F_BODY, 0, " \xc2\xb7 ");
	rich_add(&r, p, F_BODY, 0, tr(d, S_FORM));
	rich_add(&r, p, F_BODY, 0, ": ");
	rich_add(&r, p, F_BODY, 0, tr(d, d->full ? S_FORM_FULL : S_FORM_SHORT));
	rich_add(&r, p, F_BODY, 0, "\n");
	rich_add(&r, p, F_BODY, 0.3, tr(d, S_ISSUED));
	rich_add(&r, p, F_BODY, 0.3, " ");
	int64_t issued;
	size_t at = r.text.len;
	if (clock_parse_rfc3339(d->issued_at, &issued) == 0)
		put_both_times(d, &r.text, issued);
	else
		put_cleans(&r.text, d->issued_at, 64);
	rich_mark(&r, p, at, F_BODY, 0.3);
	rich_add(&r, p, F_BODY, 0.3, "\n");
	rich_add(&r, p, F_BODY, 0.3, tr(d, S_GENERATED));
	rich_add(&r, p, F_BODY, 0.3, " ");
	at = r.text.len;
	put_both_times(d, &r.text, d->now_ms);
	rich_mark(&r, p, at, F_BODY, 0.3);
	para(p, &r, F_BODY, 6);
	rich_free(&r);
}

/* A committed field of the submission: its disclosed value, "(not
 * disclosed)" when the receipt keeps it back, NULL when the field is absent. */
static const char *sub_value(const struct rdoc *d, const char *key)
{
	const char *v = jstr(d->submission, key);
	if (!v)
		return NULL;
	const char *shown = disclosed(d, v);
	return shown ? shown : tr(d, S_NOT_DISCLOSED);
}

static void put_dkim(const json_t *sealed, struct buf *out)
{
	size_t i;
	json_t *sig;
	json_array_foreach(json_object_get(sealed, "dkim"), i, sig) {
		if (i >= 8)
			break;
		buf_puts(out, i ? "; " : "");
		buf_puts(out, "d=");
		put_cleans(out, jstr(sig, "d"), 128);
		buf_puts(out, " s=");
		put_cleans(out, jstr(sig, "s"), 64);
		buf_puts(out, " (");
		put_cleans(out, jstr(sig, "a"), 32);
		buf_puts(out, ")");
	}
}

/* A number as its caller wrote it: the shortest decimal that reads back as
 * the same double (jansson's 17 digits show 99.9 as 99.900000000000006). */
static void put_real(struct buf *out, double x)
{
	char s[40];
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(s, sizeof(s), "%.*g", prec, x);
		if (strtod(s, NULL) == x)
			break;
	}
	buf_puts(out, s);
}

/* Template variables: one commitment of their canonical JSON (notice.c),
 * or per-variable commitments; "name: value" lines. */
static void put_vars(const struct rdoc *d, struct buf *out)
{
	json_t *vars = json_object_get(d->submission, "vars"), *own = NULL;
	if (json_is_string(vars)) {
		const char *text = disclosed(d, json_string_value(vars));
		if (!text) {
			buf_puts(out, tr(d, S_NOT_DISCLOSED));
			return;
		}
		vars = own = json_loads(text, 0, NULL);
	}
	const char *key;
	json_t *v;
	size_t k = 0;
	json_object_foreach(vars, key, v) {
		if (k++ >= MAX_VARS)
			break;
		buf_puts(out, k > 1 ? "\n" : "");
		put_cleans(out, key, 64);
		buf_puts(out, ": ");
		if (json_is_string(v)) {
			const char *s = disclosed(d, json_string_value(v));
			put_cleans(out, s ? s : tr(d, S_NOT_DISCLOSED), CAP_VALUE);
		} else if (json_is_real(v)) {
			put_real(out, json_real_value(v));
		} else {
			char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
			put_cleans(out, s, CAP_VALUE);
			free(s);
		}
	}
	json_decref(own);
}

static void put_attachments(const struct rdoc *d, struct rich *r, const struct pager *p)
{
	size_t i;
	json_t *a;
	json_t *list = json_object_get(d->submission, "attachments");
	if (!json_array_size(list)) {
		rich_add(r, p, F_BODY, 0, tr(d, S_NONE));
		return;
	}
	json_array_foreach(list, i, a) {
		if (i >= MAX_ATTACHMENTS)
			break;
		if (i)
			rich_add(r, p, F_BODY, 0, "\n");
		const char *name = disclosed(d, jstr(a, "filename"));
		rich_val(r, p, F_BOLD, name ? name : tr(d, S_FILENAME_WITHHELD), 256);
		rich_add(r, p, F_BODY, 0, " \xc2\xb7 ");
		rich_val(r, p, F_BODY, jstr(a, "content_type"), 128);
		char size[48];
		snprintf(size, sizeof(size), " \xc2\xb7 %lld %s\nSHA-256 ",
			 (long long)json_integer_value(json_object_get(a, "size")), tr(d, S_BYTES));
		rich_add(r, p, F_BODY, 0, size);
		rich_val(r, p, F_MONO, jstr(a, "sha256"), 80);
	}
}

static void put_tracking(const struct rdoc *d, struct buf *out)
{
	json_t *t = json_object_get(d->submission, "track");
	static const char *const keys[] = {"opens", "clicks", "read_confirmation"};
	static const enum str_id names[] = {S_TRACK_OPENS, S_TRACK_CLICKS, S_TRACK_READ};
	for (int i = 0; i < 3; i++) {
		json_t *v = json_object_get(t, keys[i]);
		buf_printf(out, "%s%s: %s", i ? ", " : "", tr(d, names[i]),
			   tr(d, !v || json_is_true(v) ? S_YES : S_NO));
	}
}

static void kv_buf(struct pager *p, const char *label, struct buf *b, enum font f)
{
	struct rich r;
	rich_init(&r);
	rich_add(&r, p, f, 0, buf_str(b)); /* b was built with put_clean */
	kv_row(p, label, &r, CONTENT_W);
	rich_free(&r);
	buf_reset(b);
}

static void receipt_pdf_notice_block(struct pager *p, const struct rdoc *d)
{
	struct buf b = BUF_INIT;
	const char *v;
	section(p, tr(d, S_SEC_NOTICE));
	kv(p, tr(d, S_ID), d->notice, F_MONO, CONTENT_W);
	if ((v = sub_value(d, "reference")))
		kv(p, tr(d, S_REFERENCE), v, F_BODY, CONTENT_W);
	if (d->full && d->mail.from.len)
		kv(p, tr(d, S_SENDER), buf_str(&d->mail.from), F_BODY, CONTENT_W);
	json_t *smime = json_object_get(d->sealed, "smime");
	if (jstr(smime, "subject"))
		kv(p, tr(d, S_SMIME_CERT), jstr(smime, "subject"), F_BODY, CONTENT_W);
	put_dkim(d->sealed, &b);
	if (b.len)
		kv_buf(p, tr(d, S_DKIM), &b, F_BODY);
	v = sub_value(d, "to");
	kv(p, tr(d, S_RECIPIENT), v ? v : tr(d, S_NOT_RECORDED), F_BOLD, CONTENT_W);
	if ((v = sub_value(d, "to_name")))
		kv(p, tr(d, S_RECIPIENT_NAME), v, F_BODY, CONTENT_W);
	if (d->full) {
		v = d->mail.subject.len ? buf_str(&d->mail.subject) : sub_value(d, "subject");
		if (v)
			kv(p, tr(d, S_SUBJECT), v, F_BODY, CONTENT_W);
	}
	if ((v = jstr(d->submission, "template")))
		kv(p, tr(d, S_TEMPLATE), v, F_BODY, CONTENT_W);
	if (d->full && json_object_get(d->submission, "vars")) {
		put_vars(d, &b);
		kv_buf(p, tr(d, S_VARIABLES), &b, F_BODY);
	}
	struct rich r;
	rich_init(&r);
	put_attachments(d, &r, p);
	kv_row(p, tr(d, S_ATTACHMENTS), &r, CONTENT_W);
	rich_free(&r);
	rich_init(&r);
	rich_add(&r, p, F_BODY, 0, "SHA-256 ");
	rich_val(&r, p, F_MONO, d->msg_sha256, 80);
	json_t *size = json_object_get(d->sealed, "size");
	if (json_is_integer(size)) {
		char s[64];
		snprintf(s, sizeof(s), " \xc2\xb7 %lld %s", (long long)json_integer_value(size),
			 tr(d, S_BYTES));
		rich_add(&r, p, F_BODY, 0, s);
	}
	if (jstr(d->sealed, "message_id")) {
		rich_add(&r, p, F_BODY, 0, "\nMessage-ID ");
		rich_val(&r, p, F_MONO, jstr(d->sealed, "message_id"), 256);
	}
	kv_row(p, tr(d, S_MESSAGE), &r, CONTENT_W);
	rich_free(&r);
	if (json_object_get(d->submission, "track")) {
		put_tracking(d, &b);
		kv_buf(p, tr(d, S_TRACKING), &b, F_BODY);
	}
	if (!d->full) {
		p->y += 2;
		para_text(p, F_SMALL, tr(d, S_SHORT_NOTE), 0);
	}
	buf_free(&b);
	p->y += 4;
}

/* ---- the timeline ------------------------------------------------------------------ */

static const struct event_kind *kind_of(const struct ev_view *e)
{
	const char *cls = jstr(e->obj, "class"), *reason = jstr(e->obj, "reason");
	const struct event_kind *k = KINDS;
	for (; k->type; k++)
		if (!strcmp(k->type, e->type) && (!k->cls || (cls && !strcmp(k->cls, cls))) &&
		    (!k->reason || (reason && !strcmp(k->reason, reason))))
			break;
	return k;
}

/* One detail line: "\nLabel: value" (value cleaned). */
static void det(struct rich *r, const struct pager *p, const struct rdoc *d, enum str_id label,
		const char *value, enum font f)
{
	if (!value)
		return;
	rich_add(r, p, F_SMALL, 0.35, "\n");
	rich_add(r, p, F_SMALL, 0.35, tr(d, label));
	rich_add(r, p, F_SMALL, 0.35, ": ");
	rich_val(r, p, f, value, CAP_LINE);
}

/* det for a committed value: disclosed, or "(not disclosed)". */
static void det_committed(struct rich *r, const struct pager *p, const struct rdoc *d,
			  enum str_id label, const json_t *o, const char *key)
{
	const char *v = jstr(o, key);
	if (!v)
		return;
	const char *shown = disclosed(d, v);
	det(r, p, d, label, shown ? shown : tr(d, S_NOT_DISCLOSED), F_SMALL);
}

static void det_int(struct rich *r, const struct pager *p, const struct rdoc *d,
		    enum str_id label, const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v))
		return;
	char s[32];
	snprintf(s, sizeof(s), "%lld", (long long)json_integer_value(v));
	det(r, p, d, label, s, F_SMALL);
}

/* A time field of the entry (RFC 3339) in UTC and São Paulo. */
static void det_time(struct rich *r, const struct pager *p, const struct rdoc *d,
		     enum str_id label, const json_t *o, const char *key)
{
	const char *v = jstr(o, key);
	int64_t ms;
	if (!v)
		return;
	if (clock_parse_rfc3339(v, &ms) != 0) {
		det(r, p, d, label, v, F_SMALL);
		return;
	}
	struct buf t = BUF_INIT;
	put_both_times(d, &t, ms);
	det(r, p, d, label, buf_str(&t), F_SMALL);
	buf_free(&t);
}

/* The SMTP reply: "250 2.0.0 <text>", the text disclosed. */
static void det_reply(struct rich *r, const struct pager *p, const struct rdoc *d,
		      const json_t *o)
{
	json_t *code = json_object_get(o, "code");
	const char *enh = jstr(o, "enhanced"), *reply = jstr(o, "reply");
	if (!json_is_integer(code) && !reply)
		return;
	struct buf b = BUF_INIT;
	if (json_is_integer(code))
		buf_printf(&b, "%lld ", (long long)json_integer_value(code));
	const char *text = reply ? disclosed(d, reply) : NULL;
	/* servers usually start the text with the enhanced code: once is enough */
	if (enh && !(text && !strncmp(text, enh, strlen(enh)))) {
		put_cleans(&b, enh, 16);
		buf_putc(&b, ' ');
	}
	if (reply)
		put_cleans(&b, text ? text : tr(d, S_NOT_DISCLOSED), CAP_VALUE);
	det(r, p, d, D_REPLY, buf_str(&b), F_SMALL);
	buf_free(&b);
}

static void details_sealed(struct rich *r, const struct pager *p, const struct rdoc *d,
			   const json_t *o)
{
	det(r, p, d, D_DIGEST, jstr(o, "sha256"), F_MONO);
	det_int(r, p, d, D_SIZE, o, "size");
	det(r, p, d, D_MSGID, jstr(o, "message_id"), F_SMALL);
	json_t *smime = json_object_get(o, "smime");
	det(r, p, d, D_SMIME, jstr(smime, "subject"), F_SMALL);
	det(r, p, d, D_CERT_SHA, jstr(smime, "cert_sha256"), F_MONO);
	if (d->mail.sig_tst_ok && o == d->sealed) {
		struct buf t = BUF_INIT;
		put_both_times(d, &t, d->mail.sig_tst_ms);
		det(r, p, d, D_SIG_TST, buf_str(&t), F_SMALL);
		buf_free(&t);
	} else if (json_object_get(smime, "timestamped")) {
		det(r, p, d, D_SIG_TST,
		    tr(d, json_is_true(json_object_get(smime, "timestamped")) ? S_YES : S_NO), F_SMALL);
	}
	struct buf b = BUF_INIT;
	put_dkim(o, &b);
	if (b.len)
		det(r, p, d, D_DKIM, buf_str(&b), F_SMALL);
	buf_free(&b);
}

/* relay_accepted, delivery_accepted, delivery_deferred and the SMTP part
 * of delivery_failed. */
static void details_attempt(struct rich *r, const struct pager *p, const struct rdoc *d,
			    const json_t *o)
{
	det_int(r, p, d, D_ATTEMPT, o, "attempt");
	det(r, p, d, D_SERVER, jstr(o, "mx"), F_SMALL);
	det(r, p, d, D_PEER, jstr(o, "peer"), F_SMALL);
	det_reply(r, p, d, o);
	if (jstr(o, "tls")) {
		struct buf t = BUF_INIT;
		put_cleans(&t, jstr(o, "tls"), 64);
		if (jstr(o, "tls_peer")) {
			buf_puts(&t, " (");
			put_cleans(&t, jstr(o, "tls_peer"), 256);
			buf_puts(&t, ")");
		}
		det(r, p, d, D_TLS, buf_str(&t), F_SMALL);
		buf_free(&t);
	} else if (json_object_get(o, "code")) {
		det(r, p, d, D_TLS, tr(d, D_NO_TLS), F_SMALL);
	}
	det(r, p, d, D_QUEUE, jstr(o, "queue_id"), F_SMALL);
	det(r, p, d, D_ERROR, jstr(o, "error"), F_SMALL);
	det_time(r, p, d, D_RETRY, o, "retry_at");
	det(r, p, d, D_TRANSPORT, jstr(o, "transport"), F_SMALL);
}

static void details_failed(struct rich *r, const struct pager *p, const struct rdoc *d,
			   const json_t *o)
{
	const char *reason = jstr(o, "reason");
	enum str_id rid = !reason ? S__COUNT : !strcmp(reason, "rejected") ? R_REJECTED
		: !strcmp(reason, "expired") ? R_EXPIRED : !strcmp(reason, "bounced") ? R_BOUNCED
		: S__COUNT;
	det(r, p, d, D_REASON, rid != S__COUNT ? tr(d, rid) : reason, F_SMALL);
	details_attempt(r, p, d, o);
	det(r, p, d, D_STATUS, jstr(o, "status"), F_SMALL);
	det_committed(r, p, d, D_DIAG, o, "diagnostic");
	det(r, p, d, D_REMOTE, jstr(o, "remote_mta"), F_SMALL);
	det(r, p, d, D_REPORTING, jstr(o, "reporting_mta"), F_SMALL);
	det_committed(r, p, d, D_FINAL_RCPT, o, "final_recipient");
	det(r, p, d, D_LAST_ATTEMPT, jstr(o, "last_attempt"), F_SMALL);
	det(r, p, d, D_DSN, jstr(o, "dsn_sha256"), F_MONO);
}

/* opened, clicked, read_confirmed: the classification first, so a machine
 * is never mistaken for the recipient. */
static void details_hit(struct rich *r, const struct pager *p, const struct rdoc *d,
			const json_t *o)
{
	const char *cls = jstr(o, "class");
	if (cls) {
		enum str_id cid = !strcmp(cls, "human") ? C_HUMAN : !strcmp(cls, "proxy") ? C_PROXY
			: !strcmp(cls, "scanner") ? C_SCANNER : S__COUNT;
		struct buf b = BUF_INIT;
		put_cleans(&b, cid != S__COUNT ? tr(d, cid) : cls, 128);
		if (jstr(o, "reason")) {
			buf_printf(&b, " \xe2\x80\x94 %s ", tr(d, D_RULE));
			put_cleans(&b, jstr(o, "reason"), 64);
		}
		det(r, p, d, D_CLASS, buf_str(&b), F_SMALL_BOLD);
		buf_free(&b);
	}
	det(r, p, d, D_DETAIL, jstr(o, "detail"), F_SMALL);
	det_time(r, p, d, D_ARRIVED, o, "arrived");
	det(r, p, d, D_METHOD, jstr(o, "method"), F_SMALL);
	det_int(r, p, d, D_LINK, o, "link");
	det_committed(r, p, d, D_IP, o, "ip");
	det_committed(r, p, d, D_AGENT, o, "user_agent");
	json_t *after = json_object_get(o, "seconds_after_delivery");
	if (json_is_integer(after)) {
		char s[64];
		snprintf(s, sizeof(s), "%lld", (long long)json_integer_value(after));
		det(r, p, d, D_AFTER, s, F_SMALL);
	}
}

/* "human 3, proxy 0, scanner 1" in the document's words. */
static void put_class_counts(struct buf *b, const struct rdoc *d, const json_t *by)
{
	static const struct {
		const char *key;
		enum str_id name;
	} cls[] = {{"human", C_HUMAN}, {"proxy", C_PROXY}, {"scanner", C_SCANNER}};
	for (size_t i = 0; i < sizeof(cls) / sizeof(cls[0]); i++)
		buf_printf(b, "%s%s: %lld", i ? "; " : "", tr(d, cls[i].name),
			   (long long)json_integer_value(json_object_get(by, cls[i].key)));
}

/* tracking_summary (docs/tracking.md "Floods"): the period, the counts by
 * kind and class, the distinct addresses, the rule that folded them. */
static void details_summary(struct rich *r, const struct pager *p, const struct rdoc *d,
			    const json_t *o)
{
	det_time(r, p, d, D_FIRST_HIT, o, "from");
	det_time(r, p, d, D_LAST_HIT, o, "to");
	struct buf b = BUF_INIT;
	put_class_counts(&b, d, json_object_get(o, "opened"));
	det(r, p, d, D_OPENS, buf_str(&b), F_SMALL);
	buf_reset(&b);
	put_class_counts(&b, d, json_object_get(o, "clicked"));
	det(r, p, d, D_CLICKS, buf_str(&b), F_SMALL);
	buf_free(&b);
	det_int(r, p, d, D_ADDRESSES, o, "addresses");
	det_int(r, p, d, D_FOLDED_AFTER, o, "first_logged");
}

/* Anything else: its type and the names of its fields. */
static void details_other(struct rich *r, const struct pager *p, const struct rdoc *d,
			  const struct ev_view *e)
{
	det(r, p, d, D_TYPE, e->type, F_MONO);
	struct buf keys = BUF_INIT;
	const char *key;
	json_t *v;
	int k = 0;
	json_object_foreach(e->obj, key, v) {
		if (!strcmp(key, "v") || !strcmp(key, "type") || !strcmp(key, "notice") ||
		    !strcmp(key, "time"))
			continue;
		if (k++ >= 30)
			break;
		buf_puts(&keys, k > 1 ? ", " : "");
		put_cleans(&keys, key, 48);
	}
	if (keys.len)
		det(r, p, d, D_FIELDS, buf_str(&keys), F_SMALL);
	buf_free(&keys);
	det(r, p, d, D_REASON, jstr(e->obj, "reason"), F_SMALL);
}

static void details(struct rich *r, const struct pager *p, const struct rdoc *d,
		    const struct ev_view *e, const struct event_kind *k)
{
	const json_t *o = e->obj;
	if (k->label == L_OTHER) {
		details_other(r, p, d, e);
	} else if (!strcmp(e->type, EV_SUBMISSION_ACCEPTED)) {
		det_int(r, p, d, D_API_KEY, o, "api_key");
		det(r, p, d, S_TEMPLATE, jstr(o, "template"), F_SMALL);
		det_committed(r, p, d, S_RECIPIENT, o, "to");
	} else if (!strcmp(e->type, EV_CONTENT_SEALED)) {
		details_sealed(r, p, d, o);
	} else if (!strcmp(e->type, EV_DELIVERY_FAILED)) {
		details_failed(r, p, d, o);
	} else if (!strcmp(e->type, EV_OPENED) || !strcmp(e->type, EV_CLICKED) ||
		   !strcmp(e->type, EV_READ_CONFIRMED)) {
		details_hit(r, p, d, o);
	} else if (!strcmp(e->type, EV_TRACKING_SUMMARY)) {
		details_summary(r, p, d, o);
	} else if (!strcmp(e->type, "canceled")) {
		det(r, p, d, D_REASON, jstr(o, "reason"), F_SMALL);
	} else {
		details_attempt(r, p, d, o);
	}
}

/* The event cell: label, evidence, details, what it proves and not. */
static void receipt_pdf_event_cell(struct rich *r, const struct pager *p, const struct rdoc *d,
		       const struct ev_view *e)
{
	const struct event_kind *k = kind_of(e);
	enum str_id label = e->obj ? k->label : L_UNREADABLE;
	rich_add(r, p, F_LABEL, 0, tr(d, label));
	rich_add(r, p, F_SMALL, 0.35, "\n");
	rich_add(r, p, F_SMALL, 0.35, tr(d, S_ETSI));
	rich_add(r, p, F_SMALL, 0.35, ": ");
	if (e->obj && k->etsi)
		rich_add(r, p, F_SMALL_BOLD, 0, k->etsi);
	else
		rich_add(r, p, F_SMALL, 0, tr(d, e->obj ? k->etsi_note : E_NONE));
	if (e->obj)
		details(r, p, d, e, k);
	rich_add(r, p, F_SMALL, 0, "\n");
	rich_add(r, p, F_SMALL_BOLD, 0, tr(d, S_PROVES));
	rich_add(r, p, F_SMALL, 0, ": ");
	rich_add(r, p, F_SMALL, 0, tr(d, e->obj ? k->proves : P_UNREADABLE));
	if (e->obj) {
		rich_add(r, p, F_SMALL, 0, "\n");
		rich_add(r, p, F_SMALL_BOLD, 0, tr(d, S_NOT_PROVES));
		rich_add(r, p, F_SMALL, 0, ": ");
		rich_add(r, p, F_SMALL, 0, tr(d, k->not_proves));
	}
}

static void time_cell(struct rich *r, const struct pager *p, const struct rdoc *d,
		      const struct ev_view *e)
{
	char u[48], l[96], z[16], idx[64];
	if (e->time_ok) {
		fmt_utc(e->time_ms, u, sizeof(u));
		fmt_local(d, e->time_ms, l, sizeof(l), z, sizeof(z));
		rich_add(r, p, F_MONO, 0, u);
		rich_add(r, p, F_SMALL, 0, "\n");
		rich_add(r, p, F_SMALL, 0, l);
		if (d->tz) {
			rich_add(r, p, F_SMALL, 0, "\n");
			rich_add(r, p, F_SMALL, 0, tr(d, S_SAO_PAULO));
			rich_add(r, p, F_SMALL, 0, " (");
			rich_add(r, p, F_SMALL, 0, z);
			rich_add(r, p, F_SMALL, 0, ")");
		}
	} else {
		rich_add(r, p, F_SMALL, 0, "?");
	}
	snprintf(idx, sizeof(idx), "\n%s %lld", tr(d, S_LOG_ENTRY), e->index);
	rich_add(r, p, F_SMALL, 0.4, idx);
}

static void timeline_header(struct pager *p, const struct rdoc *d)
{
	PangoLayout *a = layout_text(p, F_SMALL_BOLD, tr(d, S_COL_TIME), TIME_W);
	PangoLayout *b = layout_text(p, F_SMALL_BOLD, tr(d, S_COL_EVENT), CONTENT_W - TIME_W - GUTTER);
	double h = height_of(a) + 4;
	gray(p->cr, 0.9);
	cairo_rectangle(p->cr, MARGIN_X, p->y, CONTENT_W, h);
	cairo_fill(p->cr);
	draw_at(p, a, MARGIN_X + 3, p->y + 2);
	draw_at(p, b, MARGIN_X + TIME_W + GUTTER, p->y + 2);
	p->y += h + 3;
	g_object_unref(a);
	g_object_unref(b);
}

static void timeline_row(struct pager *p, const struct rdoc *d, const struct ev_view *e)
{
	struct rich tc, ec;
	rich_init(&tc);
	rich_init(&ec);
	time_cell(&tc, p, d, e);
	receipt_pdf_event_cell(&ec, p, d, e);
	PangoLayout *tl = layout_of(p, &tc, F_SMALL, TIME_W);
	PangoLayout *el = layout_of(p, &ec, F_SMALL, CONTENT_W - TIME_W - GUTTER);
	double h = height_of(el) > height_of(tl) ? height_of(el) : height_of(tl);
	need(p, h + 6);
	draw_at(p, tl, MARGIN_X + 3, p->y);
	if (h > BOTTOM - TOP - 60) {
		/* taller than a page (only long values do that): the event
		 * cell flows on, line by line */
		flow(p, el, MARGIN_X + TIME_W + GUTTER);
	} else {
		draw_at(p, el, MARGIN_X + TIME_W + GUTTER, p->y);
		p->y += h;
	}
	p->y += 3;
	gray(p->cr, 0.8);
	cairo_set_line_width(p->cr, 0.4);
	cairo_move_to(p->cr, MARGIN_X, p->y);
	cairo_line_to(p->cr, MARGIN_X + CONTENT_W, p->y);
	cairo_stroke(p->cr);
	p->y += 3;
	g_object_unref(tl);
	g_object_unref(el);
	rich_free(&tc);
	rich_free(&ec);
}

static void timeline_block(struct pager *p, const struct rdoc *d)
{
	section(p, tr(d, S_SEC_TIMELINE));
	para_text(p, F_SMALL, tr(d, S_TIMELINE_INTRO), 4);
	timeline_header(p, d);
	p->repeat = timeline_header;
	p->repeat_doc = d;
	for (size_t i = 0; i < d->nev && !p->failed; i++)
		timeline_row(p, d, &d->ev[i]);
	p->repeat = NULL;
	p->y += 4;
}

/* ---- the evidence and the QR code ---------------------------------------------------- */

/* The QR code of url (ECC level M, a 4-module quiet zone), size points
 * square, each row's dark runs as rectangles filled as one path. -1 when
 * the URL does not fit in a QR code. */
static int draw_qr(cairo_t *cr, const char *url, double x, double y, double size)
{
	QRcode *q = QRcode_encodeString(url, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
	if (!q)
		return -1;
	int n = q->width;
	double m = size / (n + 8);
	cairo_set_source_rgb(cr, 1, 1, 1);
	cairo_rectangle(cr, x, y, size, size);
	cairo_fill(cr);
	for (int row = 0; row < n; row++)
		for (int col = 0; col < n;) {
			if (!(q->data[row * n + col] & 1)) {
				col++;
				continue;
			}
			int run = col;
			while (run < n && (q->data[row * n + run] & 1))
				run++;
			cairo_rectangle(cr, x + (4 + col) * m, y + (4 + row) * m, (run - col) * m, m);
			col = run;
		}
	cairo_set_source_rgb(cr, 0, 0, 0);
	cairo_fill(cr);
	QRcode_free(q);
	return 0;
}

static void receipt_pdf_evidence_values(struct pager *p, const struct rdoc *d, double width)
{
	char s[128];
	if (d->cp_ok) {
		kv(p, tr(d, S_LOG_ORIGIN), d->cp.origin, F_BODY, width);
		snprintf(s, sizeof(s), "%llu", (unsigned long long)d->cp.size);
		kv(p, tr(d, S_TREE_SIZE), s, F_BODY, width);
		struct buf root = BUF_INIT;
		base64_encode(&root, d->cp.root, 32, 0);
		kv(p, tr(d, S_ROOT), buf_str(&root), F_MONO, width);
		buf_free(&root);
	} else {
		kv(p, tr(d, S_LOG_ORIGIN), tr(d, S_CHECKPOINT_UNREADABLE), F_BODY, width);
	}
	struct buf t = BUF_INIT;
	if (d->tst_state) {
		put_both_times(d, &t, d->tst_ms);
		if (d->tst_state == 2) {
			buf_putc(&t, ' ');
			buf_puts(&t, tr(d, S_TST_UNVERIFIED));
		}
	} else {
		buf_puts(&t, tr(d, S_TST_UNREADABLE));
	}
	kv(p, tr(d, S_TST_TIME), buf_str(&t), F_BODY, width);
	buf_free(&t);
	if (d->tsa_name[0])
		kv(p, tr(d, S_TSA), d->tsa_name, F_BODY, width);
}

/* The QR code with "Verify" above and the URL under it, at the right of
 * the evidence values; returns its height. */
static double receipt_pdf_evidence_qr(struct pager *p, const struct rdoc *d, double x, double y)
{
	const char *url = d->o->verify_url;
	if (!url || !*url || strlen(url) > 1024)
		return 0;
	PangoLayout *cap = layout_text(p, F_SMALL_BOLD, tr(d, S_QR_CAPTION), QR_SIZE);
	pango_layout_set_alignment(cap, PANGO_ALIGN_CENTER);
	draw_at(p, cap, x, y);
	double h = height_of(cap) + 2;
	g_object_unref(cap);
	if (draw_qr(p->cr, url, x, y + h, QR_SIZE) == 0)
		h += QR_SIZE + 2;
	struct rich r;
	rich_init(&r);
	rich_val(&r, p, F_MONO, url, 1024);
	PangoLayout *ul = layout_of(p, &r, F_MONO, QR_SIZE + 40);
	draw_at(p, ul, x - 20, y + h);
	h += height_of(ul);
	g_object_unref(ul);
	rich_free(&r);
	return h;
}

static void receipt_pdf_evidence_block(struct pager *p, const struct rdoc *d)
{
	section(p, tr(d, S_SEC_EVIDENCE));
	para_text(p, F_SMALL, tr(d, S_EVIDENCE_INTRO), 4);
	need(p, QR_SIZE + 60);
	double top = p->y, values_w = CONTENT_W - QR_SIZE - 3 * GUTTER - 20;
	int page = (int)p->npage;
	double qr_h = receipt_pdf_evidence_qr(p, d, MARGIN_X + CONTENT_W - QR_SIZE - 10, top);
	receipt_pdf_evidence_values(p, d, values_w);
	if ((int)p->npage == page && p->y < top + qr_h)
		p->y = top + qr_h + 4;
	kv(p, tr(d, S_VKEY), d->vkey, F_MONO, CONTENT_W); /* long: the whole width */
	p->y += 4;
	PangoLayout *l = layout_text(p, F_BOLD, tr(d, S_HOW_TO), CONTENT_W);
	need(p, height_of(l) + 40);
	draw_at(p, l, MARGIN_X, p->y);
	p->y += height_of(l) + 2;
	g_object_unref(l);
	struct rich r;
	rich_init(&r);
	rich_add(&r, p, F_SMALL, 0, "1. ");
	rich_add(&r, p, F_SMALL, 0, tr(d, S_HOW_SELO));
	rich_add(&r, p, F_SMALL, 0, "\n");
	rich_add(&r, p, F_MONO, 0, "selo verify recibo.pdf --key ");
	rich_val(&r, p, F_MONO, d->vkey, 512);
	if (d->o->verify_url && *d->o->verify_url) {
		rich_add(&r, p, F_SMALL, 0, "\n2. ");
		rich_add(&r, p, F_SMALL, 0, tr(d, S_HOW_PAGE));
		rich_add(&r, p, F_SMALL, 0, "\n");
		rich_val(&r, p, F_MONO, d->o->verify_url, 1024);
	}
	rich_add(&r, p, F_SMALL, 0, d->o->verify_url && *d->o->verify_url ? "\n3. " : "\n2. ");
	rich_add(&r, p, F_SMALL, 0, tr(d, S_HOW_OPENSSL));
	rich_add(&r, p, F_SMALL, 0, "\n");
	rich_add(&r, p, F_SMALL_BOLD, 0, tr(d, S_HOW_KEYS));
	para(p, &r, F_SMALL, 6);
	rich_free(&r);
}

/* ---- the message's text and the closing box ------------------------------------------ */

static void content_block(struct pager *p, const struct rdoc *d)
{
	const struct mail *m = &d->mail;
	section(p, tr(d, S_SEC_CONTENT));
	enum str_id intro = m->body_kind == 1 ? S_CONTENT_HTML : m->body_kind == 2 ? S_CONTENT_PLAIN
		: S_CONTENT_NONE;
	para_text(p, F_SMALL, tr(d, intro), 5);
	if (m->body.len) {
		struct rich r;
		rich_init(&r);
		rich_add(&r, p, F_BODY, 0, buf_str(&m->body)); /* cleaned by mail_body */
		if (m->body_cut) {
			rich_add(&r, p, F_BODY, 0, "\n");
			rich_add(&r, p, F_SMALL_BOLD, 0, tr(d, S_TRUNCATED));
		}
		PangoLayout *l = layout_of(p, &r, F_BODY, CONTENT_W - 16);
		flow(p, l, MARGIN_X + 8);
		g_object_unref(l);
		rich_free(&r);
	}
	p->y += 6;
}

static void proves_box(struct pager *p, const struct rdoc *d)
{
	struct rich r;
	rich_init(&r);
	rich_add(&r, p, F_HEAD, 0, tr(d, S_SEC_PROVES));
	for (enum str_id i = S_PROVES_1; i <= S_PROVES_7; i++) {
		rich_add(&r, p, F_BODY, 0, "\n\xe2\x80\xa2 ");
		rich_add(&r, p, F_BODY, 0, tr(d, i));
	}
	PangoLayout *l = layout_of(p, &r, F_BODY, CONTENT_W - 20);
	double h = height_of(l) + 20;
	p->y += 6;
	need(p, h);
	cairo_set_source_rgb(p->cr, 0.95, 0.96, 0.99);
	cairo_rectangle(p->cr, MARGIN_X, p->y, CONTENT_W, h);
	cairo_fill_preserve(p->cr);
	cairo_set_source_rgb(p->cr, 0.35, 0.4, 0.55);
	cairo_set_line_width(p->cr, 0.8);
	cairo_stroke(p->cr);
	draw_at(p, l, MARGIN_X + 10, p->y + 10);
	p->y += h;
	g_object_unref(l);
	rich_free(&r);
}

/* ---- the PDF: pages replayed with their footers ------------------------------------------ */

static cairo_status_t write_out(void *arg, const unsigned char *data, unsigned int len)
{
	buf_append(arg, data, len);
	return CAIRO_STATUS_SUCCESS;
}

static void footer(struct pager *p, cairo_t *cr, const struct rdoc *d, size_t i)
{
	char right[64];
	snprintf(right, sizeof(right), "%s %zu %s %zu", tr(d, S_PAGE), i + 1, tr(d, S_OF), p->npage);
	struct rich r;
	rich_init(&r);
	rich_add(&r, p, F_SMALL, 0.3, tr(d, S_FOOTER));
	rich_add(&r, p, F_SMALL, 0.3, " \xc2\xb7 ");
	rich_add(&r, p, F_SMALL, 0.3, tr(d, S_NOTICE));
	rich_add(&r, p, F_SMALL, 0.3, " ");
	rich_val(&r, p, F_SMALL, d->notice, 64);
	PangoLayout *left = layout_of(p, &r, F_SMALL, CONTENT_W / 2);
	PangoLayout *pg = layout_text(p, F_SMALL, right, CONTENT_W / 2);
	pango_layout_set_alignment(pg, PANGO_ALIGN_RIGHT);
	double y = PAGE_H - 40;
	gray(cr, 0.6);
	cairo_set_line_width(cr, 0.5);
	cairo_move_to(cr, MARGIN_X, y - 4);
	cairo_line_to(cr, MARGIN_X + CONTENT_W, y - 4);
	cairo_stroke(cr);
	gray(cr, 0.3);
	cairo_move_to(cr, MARGIN_X, y);
	pango_cairo_show_layout(cr, left);
	cairo_move_to(cr, MARGIN_X + CONTENT_W / 2, y);
	pango_cairo_show_layout(cr, pg);
	g_object_unref(left);
	g_object_unref(pg);
	rich_free(&r);
}

/* PDF metadata: title, author, subject, creator, creation date. cairo 1.16
 * has no /Lang; docs/receipt-pdf-layout.md. */
static void metadata(cairo_surface_t *s, const struct rdoc *d)
{
	char subject[128], date[80];
	snprintf(subject, sizeof(subject), "%s %s", tr(d, S_DOC_SUBJECT), d->notice);
	struct tm tm;
	tm_of(d->now_ms, 0, &tm);
	snprintf(date, sizeof(date), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_TITLE, tr(d, S_TITLE));
	cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_AUTHOR, "Selo");
	cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_SUBJECT, subject);
	cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATOR, "Selo");
	cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATE_DATE, date);
}

static int pages_to_pdf(struct pager *p, const struct rdoc *d, struct buf *out,
			struct selo_err *err)
{
	struct buf pdf = BUF_INIT;
	cairo_surface_t *s = cairo_pdf_surface_create_for_stream(write_out, &pdf, PAGE_W, PAGE_H);
	cairo_pdf_surface_restrict_to_version(s, CAIRO_PDF_VERSION_1_5);
	metadata(s, d);
	cairo_t *cr = cairo_create(s);
	for (size_t i = 0; i < p->npage; i++) {
		cairo_set_source_surface(cr, p->page[i], 0, 0);
		cairo_paint(cr);
		footer(p, cr, d, i);
		cairo_show_page(cr);
	}
	cairo_status_t st = cairo_status(cr);
	cairo_destroy(cr);
	cairo_surface_finish(s);
	if (st == CAIRO_STATUS_SUCCESS)
		st = cairo_surface_status(s);
	cairo_surface_destroy(s);
	if (st != CAIRO_STATUS_SUCCESS) {
		buf_free(&pdf);
		return err_set(err, 500, "pdf", "cairo could not write the PDF: %s",
			       cairo_status_to_string(st));
	}
	buf_append(out, pdf.data, pdf.len);
	buf_free(&pdf);
	return 0;
}

/* ---- putting it together ---------------------------------------------------------------- */

/* Pango's default font map is per thread (pango >= 1.32.6), so layouts in
 * several server threads at once do not share font caches; the map and its
 * fonts live as long as the thread, which makes every layout after a
 * thread's first one fast. The context is ours: points as units (72 dpi)
 * and no hinting, so text measures the same as it prints. */
static int pager_open(struct pager *p)
{
	memset(p, 0, sizeof(*p));
	p->pc = pango_font_map_create_context(pango_cairo_font_map_get_default());
	if (!p->pc)
		return -1;
	pango_cairo_context_set_resolution(p->pc, 72);
	cairo_font_options_t *fo = cairo_font_options_create();
	cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
	cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_NONE);
	pango_cairo_context_set_font_options(p->pc, fo);
	cairo_font_options_destroy(fo);
	for (int i = 0; i < F_COUNT; i++)
		p->font[i] = pango_font_description_from_string(FONT_SPEC[i]);
	return page_new(p);
}

void receipt_pdf_fonts_release(void)
{
	pango_cairo_font_map_set_default(NULL);
}

/* LeakSanitizer, in any program that lays out receipts (selo, the tests)
 * built with -fsanitize=address: fontconfig links its patterns by offsets,
 * not pointers, so what a live font map holds through them looks
 * unreachable, and it loses a few hundred bytes parsing its XML
 * configuration once. Only allocations made inside libfontconfig are
 * exempt: a pango, cairo or glib object we forget is still reported.
 * Without the sanitizer nothing calls this. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libfontconfig.so\n";
}

static void pager_close(struct pager *p)
{
	if (p->cr)
		cairo_destroy(p->cr);
	for (size_t i = 0; i < p->npage; i++)
		cairo_surface_destroy(p->page[i]);
	free(p->page);
	for (int i = 0; i < F_COUNT; i++)
		if (p->font[i])
			pango_font_description_free(p->font[i]);
	if (p->pc)
		g_object_unref(p->pc);
}

static void doc_close(struct rdoc *d)
{
	for (size_t i = 0; i < d->nev; i++)
		json_decref(d->ev[i].obj);
	free(d->ev);
	free(d->eml);
	buf_free(&d->mail.from);
	buf_free(&d->mail.subject);
	buf_free(&d->mail.body);
	if (d->tz)
		g_time_zone_unref(d->tz);
	json_decref(d->root);
	memset(d, 0, sizeof(*d));
}

static int doc_open(struct rdoc *d, const char *json, size_t len, const struct receipt_pdf_opts *o,
		    struct selo_err *err)
{
	memset(d, 0, sizeof(*d));
	d->o = o;
	const char *lang = o ? o->lang : NULL;
	if (lang && strcmp(lang, "pt-BR") != 0 && strcmp(lang, "en") != 0)
		return err_set(err, 400, "invalid-lang", "lang must be pt-BR or en, not \"%.40s\"",
			       lang);
	d->lang = lang && !strcmp(lang, "en") ? EN : PT;
	d->now_ms = o && o->now_ms ? o->now_ms : clock_now_ms();
	if (read_doc(d, json, len, err) != 0)
		return -1;
	d->tz = g_time_zone_new_identifier(ZONE);
	read_checkpoint(d);
	read_timestamp(d);
	if (d->full)
		read_mail(d);
	return 0;
}

static int doc_layout(struct rdoc *d, struct buf *out, struct selo_err *err)
{
	struct pager p;
	int rc = -1;
	if (pager_open(&p) != 0) {
		pager_close(&p);
		return err_set(err, 500, "pdf", "cannot start a page");
	}
	title_block(&p, d);
	receipt_pdf_notice_block(&p, d);
	timeline_block(&p, d);
	receipt_pdf_evidence_block(&p, d);
	if (d->full)
		content_block(&p, d);
	proves_box(&p, d);
	if (p.cr && cairo_status(p.cr) != CAIRO_STATUS_SUCCESS)
		p.failed = 1;
	if (p.failed)
		err_set(err, 500, "pdf", "the receipt could not be laid out (over %d pages, or "
			"out of memory)", MAX_PAGES);
	else
		rc = pages_to_pdf(&p, d, out, err);
	pager_close(&p);
	return rc;
}

int receipt_pdf_layout(const char *json, size_t len, const struct receipt_pdf_opts *o,
		       struct buf *out, struct selo_err *err)
{
	struct rdoc d;
	int rc = doc_open(&d, json, len, o, err);
	if (rc == 0)
		rc = doc_layout(&d, out, err);
	doc_close(&d);
	return rc;
}

/* The embedded files: the receipt exactly as given (so the JSON pulled out
 * of the PDF is byte for byte `selo receipt -o`'s) and, in the full form,
 * the exact message. */
int receipt_pdf(const char *json, size_t len, const struct receipt_pdf_opts *o,
		const struct pdf_sign_opts *sign, struct buf *out, struct selo_err *err)
{
	struct rdoc d;
	struct buf pages = BUF_INIT;
	int rc = doc_open(&d, json, len, o, err);
	if (rc == 0)
		rc = doc_layout(&d, &pages, err);
	if (rc == 0) {
		char jname[64], ename[64], jdesc[192], edesc[192];
		snprintf(jname, sizeof(jname), "receipt-%s.json", d.notice);
		snprintf(ename, sizeof(ename), "message-%s.eml", d.notice);
		snprintf(jdesc, sizeof(jdesc), "%s %s", tr(&d, S_ATT_JSON), d.notice);
		snprintf(edesc, sizeof(edesc), "%s %s", tr(&d, S_ATT_EML), d.notice);
		struct pdf_attachment att[2] = {
			{jname, "application/json", jdesc, "Data", (const uint8_t *)json, len},
			{ename, "message/rfc822", edesc, "Source", d.eml, d.eml_len},
		};
		rc = pdf_finish((const uint8_t *)pages.data, pages.len, att, d.full ? 2 : 1, sign,
				out, err);
	}
	buf_free(&pages);
	doc_close(&d);
	return rc;
}
