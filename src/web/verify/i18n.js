// i18n.js: every text the page shows, in Portuguese (the default) and
// English. Check names stay as `selo verify` prints them; each check has a
// plain-words description, and each result a detail built from the
// message key and arguments checks.js reports.

export const LANGS = ['pt-BR', 'en'];

const CHECK_INFO = {
  pdf_signature: ['Verifica se uma assinatura digital válida (PAdES) cobre o PDF inteiro: só então as páginas são as que foram assinadas.',
    'Checks that a valid digital signature (PAdES) covers the whole PDF: only then are its pages the ones signed.'],
  format: ['Verifica se o arquivo é um recibo selo-receipt/v1 completo e bem formado.',
    'Checks that the file is a complete, well-formed selo-receipt/v1.'],
  notice: ['Verifica a qual notificação o recibo se refere.', 'Checks which notice the receipt is about.'],
  checkpoint_signature: ['Verifica se o operador do log assinou este estado do log (assinatura Ed25519).',
    'Checks that the log operator signed this state of the log (Ed25519 signature).'],
  key_pinned: ['Verifica se a chave que assinou é a do operador, e não a de quem escreveu o recibo.',
    'Checks that the signing key is the operator\'s, not whoever wrote the receipt.'],
  checkpoint_origin: ['Verifica se o estado assinado é deste log (origem, tamanho e raiz da árvore).',
    'Checks that the signed state is this log\'s (origin, size and tree root).'],
  checkpoint_timestamp: ['Verifica se uma autoridade de carimbo do tempo (RFC 3161) atestou que esse estado do log já existia na hora indicada.',
    'Checks that a timestamping authority (RFC 3161) attested that this state of the log existed at the time shown.'],
  tsa_pinned: ['Verifica se o certificado da autoridade de carimbo do tempo foi conferido com a AC que você informou.',
    'Checks that the timestamping authority\'s certificate was checked against the CA you gave.'],
  inclusion: ['Verifica se este evento exato está no log assinado, na posição indicada (prova de inclusão Merkle, RFC 9162).',
    'Checks that this exact event is in the signed log, at the position given (Merkle inclusion proof, RFC 9162).'],
  entries_notice: ['Verifica se todos os eventos são desta notificação.', 'Checks that every event belongs to this notice.'],
  time_order: ['Verifica se os eventos estão em ordem, começando pelo recebimento da notificação.',
    'Checks that the events are in order, starting with the notice\'s acceptance.'],
  entries_before_timestamp: ['Verifica se nenhum evento tem data posterior ao carimbo do tempo.',
    'Checks that no event is dated after the timestamp.'],
  message_digest: ['Verifica se a mensagem é exatamente a que foi selada e enviada.',
    'Checks that the message is exactly the one sealed and sent.'],
  disclosures: ['Verifica se os dados pessoais revelados (endereço, nome, resposta do servidor…) são os mesmos que o log guarda apenas como compromissos.',
    'Checks that the personal data disclosed (address, name, server reply…) are the ones the log holds only as commitments.'],
};

export function checkInfo(lang, name) {
  const v = CHECK_INFO[name];
  return v ? v[lang === 'en' ? 1 : 0] : '';
}

const UI = {
  title: ['Verificar um recibo Selo', 'Verify a Selo receipt'],
  lead: ['Solte aqui o recibo (r.json ou o PDF r.pdf). Todas as verificações do comando selo verify rodam neste navegador: nada do arquivo é enviado a lugar algum.',
    'Drop a receipt here (r.json or the PDF r.pdf). Every check of the selo verify command runs in this browser: nothing of the file is sent anywhere.'],
  drop: ['Arraste o arquivo para cá ou', 'Drag the file here or'],
  pick: ['escolha um arquivo', 'choose a file'],
  fileLabel: ['Recibo (JSON ou PDF)', 'Receipt (JSON or PDF)'],
  trust: ['Chaves de confiança (recomendado)', 'Trust anchors (recommended)'],
  trustHelp: ['Sem elas, o recibo é conferido contra as cópias que ele mesmo traz: isso mostra que ele é coerente, mas não que foi o operador quem o assinou. Peça ao operador a chave do log e o certificado da AC da TSA.',
    'Without them the receipt is checked against the copies it carries itself: that shows it is consistent, not that the operator signed it. Ask the operator for the log key and the TSA\'s CA certificate.'],
  keyLabel: ['Chave verificadora do log (nome+id+base64, arquivo log.vkey)', 'Log verifier key (name+id+base64, file log.vkey)'],
  caLabel: ['Certificado da AC da TSA (PEM, ex.: ca.crt)', 'TSA CA certificate (PEM, e.g. ca.crt)'],
  caClear: ['Remover', 'Remove'],
  again: ['Verificar de novo', 'Verify again'],
  lang: ['English', 'Português'],
  langLabel: ['Read this page in English', 'Ler esta página em português'],
  working: ['Verificando…', 'Verifying…'],
  V_VALID: ['VÁLIDO', 'VALID'],
  V_INVALID: ['INVÁLIDO', 'INVALID'],
  V_UNREADABLE: ['ILEGÍVEL', 'UNREADABLE'],
  V_INCOMPLETE: ['NÃO VERIFICADO POR COMPLETO', 'NOT FULLY VERIFIED'],
  VD_VALID: ['Todas as verificações passaram.', 'Every check passed.'],
  VD_VALID_WARN: ['Todas as verificações passaram, com avisos: veja os itens em amarelo.',
    'Every check passed, with warnings: see the items in amber.'],
  VD_INVALID: ['Pelo menos uma verificação falhou: o recibo foi alterado, está danificado ou não é deste log.',
    'At least one check failed: the receipt was altered, is damaged or is not this log\'s.'],
  failedList: ['Falharam: {0}', 'Failed: {0}'],
  VD_UNREADABLE: ['O arquivo não é um recibo Selo.', 'The file is not a Selo receipt.'],
  V_PDF_UNPROVEN: ['PÁGINAS DO PDF NÃO COMPROVADAS', 'PDF PAGES NOT PROVEN'],
  VD_PDF_UNPROVEN: ['O recibo embutido no PDF é VÁLIDO: passou em todas as suas verificações, e o que ele traz está comprovado. Mas nenhuma assinatura válida cobre as páginas deste PDF: o que elas dizem NÃO está comprovado. Como documento, este PDF é inválido; só o recibo embutido vale como prova.',
    'The receipt embedded in the PDF is VALID: it passed every one of its checks, and what it holds is proven. But no valid signature covers this PDF\'s pages: what they say is NOT proven. As a document this PDF is invalid; only the embedded receipt counts as proof.'],
  VD_INCOMPLETE: ['Nada falhou, mas uma parte não pôde ser verificada neste navegador: confira com selo verify.',
    'Nothing failed, but a part could not be checked in this browser: check it with selo verify.'],
  S_ok: ['ok', 'ok'],
  S_fail: ['FALHOU', 'FAILED'],
  S_warn: ['aviso', 'warning'],
  S_skip: ['não verificado aqui', 'not checked here'],
  file: ['Arquivo', 'File'],
  pdfFound: ['Recibo encontrado dentro do PDF ({0}); abaixo, a assinatura do próprio PDF (pdf_signature) e as verificações do recibo embutido.',
    'Receipt found inside the PDF ({0}); below, the PDF\'s own signature (pdf_signature) and the checks of the embedded receipt.'],
  pdfPagesOk: ['Uma assinatura válida cobre o PDF inteiro: as páginas são as que foram assinadas. Quem assinou é julgado por um leitor de PDF que confie na AC do operador (esta página não julga a cadeia do certificado).',
    'A valid signature covers the whole PDF: its pages are the ones signed. Who signed is for a PDF reader that trusts the operator\'s CA to judge (this page does not judge the certificate chain).'],
  pdfPagesNot: ['As páginas deste PDF NÃO estão comprovadas: nenhuma assinatura válida cobre o arquivo inteiro. Só o recibo embutido é prova (as verificações abaixo de pdf_signature); o que as páginas dizem, não.',
    'This PDF\'s pages are NOT proven: no valid signature covers the whole file. Only the embedded receipt is proof (the checks below pdf_signature); what the pages say is not.'],
  pdfPagesSkip: ['A assinatura do PDF não pôde ser verificada neste navegador: as páginas não estão comprovadas aqui; confira com selo verify.',
    'The PDF\'s signature could not be checked in this browser: its pages are not proven here; check with selo verify.'],
  pdfNone: ['Este PDF não contém um recibo Selo (nenhum arquivo .json embutido). Exporte o recibo com selo receipt ID --pdf, ou solte o r.json.',
    'This PDF holds no Selo receipt (no embedded .json file). Export one with selo receipt ID --pdf, or drop the r.json.'],
  pdfBad: ['Não foi possível ler o recibo dentro deste PDF: {0}.', 'The receipt inside this PDF cannot be read: {0}.'],
  tooBig: ['O arquivo tem mais de 64 MiB: não é um recibo Selo.', 'The file is larger than 64 MiB: it is not a Selo receipt.'],
  readErr: ['Não foi possível ler o arquivo: {0}', 'The file cannot be read: {0}'],
  noCrypto: ['Este navegador não oferece WebCrypto nesta página (é preciso HTTPS ou localhost, e um navegador atual). Use selo verify.',
    'This browser offers no WebCrypto on this page (it needs HTTPS or localhost, and a current browser). Use selo verify.'],
  summary: ['Resumo', 'Summary'],
  sNotice: ['Notificação', 'Notice'],
  sEvents: ['Eventos', 'Events'],
  sLog: ['Log', 'Log'],
  sTree: ['Árvore', 'Tree'],
  sTime: ['Carimbo do tempo', 'Timestamp'],
  sTsa: ['Autoridade (TSA)', 'Authority (TSA)'],
  sForm: ['Forma', 'Form'],
  formFull: ['completa (com a mensagem)', 'full (with the message)'],
  formShort: ['curta (sem a mensagem)', 'short (without the message)'],
  treeText: ['{0} entradas, raiz {1}', '{0} entries, root {1}'],
  evHead: ['Linha do tempo', 'Timeline'],
  evIndex: ['Posição no log', 'Log index'],
  evType: ['Evento', 'Event'],
  evTime: ['Hora (UTC)', 'Time (UTC)'],
  evLocal: ['Hora de Brasília', 'Brasília time'],
  checksHead: ['Verificações', 'Checks'],
  cpHead: ['Checkpoint público atual do log', 'The log\'s current public checkpoint'],
  cpLoad: ['Ver o checkpoint público atual', 'Show the current public checkpoint'],
  cpLoading: ['Buscando /log/checkpoint…', 'Fetching /log/checkpoint…'],
  cpErr: ['Não foi possível obter o checkpoint público: {0}', 'The public checkpoint cannot be fetched: {0}'],
  cpOrigin: ['Origem', 'Origin'],
  cpSize: ['Tamanho da árvore', 'Tree size'],
  cpRoot: ['Raiz', 'Root'],
  cpSig: ['Assinatura', 'Signature'],
  cpSigOk: ['válida, pela chave {0} ({1})', 'valid, by the key {0} ({1})'],
  cpSigBad: ['NÃO confere com a chave {0}', 'does NOT verify with the key {0}'],
  cpSigNone: ['não conferida: informe a chave do log acima ou carregue um recibo', 'not checked: give the log key above or load a receipt'],
  keyGiven: ['informada por você', 'you gave'],
  keyReceipt: ['do recibo', 'from the receipt'],
  cpGrown: ['O log cresceu desde o recibo: {0} entradas agora, {1} no checkpoint do recibo.',
    'The log has grown since the receipt: {0} entries now, {1} in the receipt\'s checkpoint.'],
  cpSame: ['O log tem o mesmo tamanho do checkpoint do recibo ({0}) e a mesma raiz.',
    'The log has the receipt\'s checkpoint size ({0}) and the same root.'],
  cpFork: ['O log público tem o tamanho do recibo ({0}) mas OUTRA raiz: o log não é o mesmo.',
    'The public log has the receipt\'s size ({0}) but ANOTHER root: it is not the same log.'],
  cpShrunk: ['O log público ({0}) é MENOR que o checkpoint do recibo ({1}): um log nunca encolhe.',
    'The public log ({0}) is SMALLER than the receipt\'s checkpoint ({1}): a log never shrinks.'],
  cpOther: ['O checkpoint público é de outro log ({0}), não do log do recibo ({1}).',
    'The public checkpoint is another log\'s ({0}), not the receipt\'s log ({1}).'],
  cpNoProof: ['A prova de consistência entre os dois tamanhos não é verificada nesta página.',
    'The consistency proof between the two sizes is not checked on this page.'],
  notHead: ['O que esta página não verifica', 'What this page does not check'],
  not1: ['A cadeia do certificado que assinou o PDF (quem assinou): use um leitor de PDF ou pdfsig com a AC do operador. A assinatura em si, e que ela cobre o PDF inteiro, é verificada aqui (pdf_signature).',
    'The certificate chain of the PDF\'s signer (who signed): use a PDF reader or pdfsig with the operator\'s CA. The signature itself, and that it covers the whole PDF, is checked here (pdf_signature).'],
  not2: ['Revogação de certificados (CRL/OCSP) — o selo verify também não verifica.',
    'Certificate revocation (CRL/OCSP) — selo verify does not either.'],
  not3: ['Que o recibo traga todos os eventos da notificação: cada evento mostrado é provado, mas quem exporta escolhe quais mostrar.',
    'That the receipt holds every event of the notice: each event shown is proven, but whoever exports it chooses which to show.'],
  not4: ['A consistência entre o checkpoint do recibo e o checkpoint público atual (só os tamanhos e, se iguais, as raízes).',
    'Consistency between the receipt\'s checkpoint and the current public one (only the sizes and, when equal, the roots).'],
  not5: ['Algoritmos que o navegador não oferece (por exemplo RSA-PSS) aparecem em amarelo como "não verificado aqui": confira com selo verify.',
    'Algorithms the browser lacks (RSA-PSS, for instance) show in amber as "not checked here": check with selo verify.'],
  footer: ['Página servida pelo próprio Selo; não carrega nada de outros sites e não envia o arquivo. Em linha de comando: selo verify r.json --key log.vkey --tsa-ca ca.crt',
    'Page served by Selo itself; it loads nothing from other sites and does not send the file. On the command line: selo verify r.json --key log.vkey --tsa-ca ca.crt'],
  caBad: ['O arquivo da AC não pôde ser lido: {0}', 'The CA file cannot be read: {0}'],
  caOk: ['{0} certificado(s) de AC carregado(s): {1}', '{0} CA certificate(s) loaded: {1}'],
  disclosed: ['Dados revelados', 'Disclosed data'],
};

export function ui(lang, key, ...args) {
  const v = UI[key];
  if (!v) return key;
  let s = v[lang === 'en' ? 1 : 0];
  args.forEach((a, i) => { s = s.split(`{${i}}`).join(String(a)); });
  return s;
}

// Event types in plain words (ETSI EN 319 522 names where one fits).
const EVENTS = {
  submission_accepted: ['notificação recebida pelo Selo', 'notice accepted by Selo'],
  content_sealed: ['mensagem selada (assinada e carimbada)', 'message sealed (signed and timestamped)'],
  relay_accepted: ['entregue ao servidor de envio (relay)', 'handed to the relay'],
  delivery_accepted: ['entregue ao servidor de e-mail do destinatário', 'delivered to the recipient\'s mail server'],
  delivery_deferred: ['entrega adiada (nova tentativa)', 'delivery deferred (will retry)'],
  delivery_failed: ['entrega falhou', 'delivery failed'],
  opened: ['imagem da mensagem carregada', 'message image loaded'],
  clicked: ['link clicado', 'link clicked'],
  read_confirmed: ['leitura confirmada pelo destinatário', 'reading confirmed by the recipient'],
  canceled: ['cancelada antes do envio', 'canceled before sending'],
  tracking_summary: ['resumo de acessos posteriores (contagem)', 'summary of later hits (counts)'],
};

export function eventName(lang, type) {
  const v = EVENTS[type];
  return v ? v[lang === 'en' ? 1 : 0] : type;
}

// ---- details ------------------------------------------------------------

const P = {
  p_unknown: (a) => [`campo desconhecido "${a.field}" em ${a.where}`, `unknown field "${a.field}" in ${a.where}`],
  p_missing: (a) => [`${a.path} não existe`, `${a.path} is missing`],
  p_notstring: (a) => [`${a.path} não é um texto`, `${a.path} is not a string`],
  p_toolong: (a) => [`${a.path} tem mais de ${a.max} bytes`, `${a.path} is longer than ${a.max} bytes`],
  p_nottype: (a) => [`${a.path} não é ${a.what === 'object' ? 'um objeto' : 'uma lista'}`, `${a.path} is not ${a.what === 'object' ? 'an object' : 'an array'}`],
  p_vkey: (a) => [`log.verifier_key: ${vk(0, a)}`, `log.verifier_key: ${vk(1, a)}`],
  p_vkey_form: (a) => [`log.verifier_key não está na sua forma única (${a.canon})`, `log.verifier_key is not written in its one form (${a.canon})`],
  p_ts_b64: () => ['log.timestamp não é base64', 'log.timestamp is not base64'],
  p_certs_count: (a) => [`log.tsa_certs deve ter de 1 a 8 certificados, não ${a.n}`, `log.tsa_certs must hold 1 to 8 certificates, not ${a.n}`],
  p_cert_notpem: (a) => [`log.tsa_certs[${a.i}] não é um certificado PEM`, `log.tsa_certs[${a.i}] is not a PEM certificate`],
  p_cert_form: (a) => [`log.tsa_certs[${a.i}] não é um certificado em PEM como o OpenSSL o escreve`, `log.tsa_certs[${a.i}] is not one certificate in PEM as OpenSSL writes it`],
  p_events_count: (a) => [`events deve ter de 1 a 10000 eventos, não ${a.n}`, `events must hold 1 to 10000 events, not ${a.n}`],
  p_ev_notobj: (a) => [`events[${a.i}] não é um objeto`, `events[${a.i}] is not an object`],
  p_ev_index: (a) => [`events[${a.i}].index não é um inteiro não negativo`, `events[${a.i}].index is not a non-negative integer`],
  p_proof_many: (a) => [`events[${a.i}].proof tem ${a.n} hashes, mais que 64`, `events[${a.i}].proof has ${a.n} hashes, more than 64`],
  p_proof_hash: (a) => [`events[${a.i}].proof[${a.j}] não é o base64 de um hash de 32 bytes`, `events[${a.i}].proof[${a.j}] is not the base64 of a 32-byte hash`],
  p_order: (a) => [`os eventos não estão na ordem do log: events[${a.i}].index ${a.idx} vem depois de ${a.prev}`, `events are not in log order: events[${a.i}].index ${a.idx} follows ${a.prev}`],
  p_sha_hex: () => ['message.sha256 não tem 64 dígitos hexadecimais minúsculos', 'message.sha256 is not 64 lowercase hex digits'],
  p_eml_b64: () => ['message.eml_base64 não é base64', 'message.eml_base64 is not base64'],
  p_salt: () => ['disclosure.salt não tem 64 dígitos hexadecimais minúsculos', 'disclosure.salt is not 64 lowercase hex digits'],
  p_value_notstring: (a) => [`disclosure.values["${a.k}"] não é um texto`, `disclosure.values["${a.k}"] is not a string`],
  p_issued_at: () => ['issued_at não é uma hora RFC 3339 UTC com milissegundos', 'issued_at is not an RFC 3339 UTC time with milliseconds'],
};

function vk(l, a) {
  if (a.why === 'vk_id')
    return [`o ID ${a.id} da chave não corresponde ao nome e à chave pública (alterada ou digitada errado)`,
      `key ID ${a.id} does not match its name and public key (the key was altered or mistyped)`][l];
  return ['a chave não tem a forma "<nome>+<8 dígitos hex>+<base64 de 0x01 e uma chave Ed25519 de 32 bytes>"',
    'the key is not "<name>+<8 hex digits>+<base64 of 0x01 and a 32-byte Ed25519 key>"'][l];
}

const NOTE = {
  note_chars: () => ['não é UTF-8 ou tem caracteres de controle além de nova linha', 'it is not UTF-8, or has control characters other than newline'],
  note_noblank: () => ['nenhuma linha em branco separa o texto das assinaturas', 'no blank line separates the text from the signatures'],
  note_nosig: () => ['nenhuma linha de assinatura depois da linha em branco', 'no signature line follows the blank line'],
  note_noeol: () => ['a última linha de assinatura não termina em nova linha', 'the last signature line does not end in a newline'],
  note_many: (a) => [`${a.n} linhas de assinatura; no máximo 100 são aceitas`, `${a.n} signature lines, at most 100 are accepted`],
  note_line: (a) => [`a linha de assinatura ${a.n} ${LINE[a.why][0]}`, `signature line ${a.n} ${LINE[a.why][1]}`],
  note_badsig: (a) => [`a assinatura da chave ${a.name} (ID ${a.id}) não confere: o checkpoint foi alterado ou assinado por outra chave`,
    `the signature by trusted key ${a.name} (ID ${a.id}) does not verify: the note was altered, or signed by a different key`],
  note_untrusted: (a) => [`o checkpoint não tem assinatura da chave esperada (primeiro signatário: ${a.first})`,
    `the note has no signature by a trusted key (first signer: ${a.first})`],
};
const LINE = {
  line_dash: ['não começa com um travessão (U+2014) e um espaço', 'does not start with an em dash (U+2014) and a space'],
  line_space: ['não tem espaço entre o nome da chave e a assinatura', 'has no space between the key name and the signature'],
  line_name: ['tem um nome de chave vazio, ou com espaço ou "+"', 'has an empty key name, or one with a space or \'+\''],
  line_b64: ['não traz base64 padrão de um ID de chave e uma assinatura', 'does not hold standard padded base64 of a key ID and a signature'],
};

const CP = {
  cp_eol: ['o texto não termina em nova linha', 'the text does not end in a newline'],
  cp_chars: ['não é UTF-8 ou tem caracteres de controle', 'it is not UTF-8, or has control characters'],
  cp_lines: ['tem menos de 3 linhas (origem, tamanho, raiz)', 'it has fewer than 3 lines (origin, size, root hash)'],
  cp_origin: ['a linha de origem está vazia ou tem mais de 255 bytes', 'the origin line is empty or longer than 255 bytes'],
  cp_size: ['o tamanho da árvore não é um número decimal sem zeros à esquerda', 'the tree size is not a decimal number without leading zeros'],
  cp_root: ['a raiz não é base64 padrão de 32 bytes', 'the root hash is not standard base64 of 32 bytes'],
  cp_ext: ['tem uma linha de extensão vazia', 'it has an empty extension line'],
  cp_empty: ['um checkpoint de tamanho 0 deve trazer a raiz da árvore vazia', 'a checkpoint of size 0 must carry the empty tree\'s root'],
};

const TP = {
  tp_der: ['não é um único token em DER canônico', 'it is not one token in canonical DER'],
  tp_signed: ['o SignedData tem versão, signatário, parâmetros de algoritmo, CRLs ou atributos não assinados inesperados',
    'its SignedData has an unexpected version, signer, algorithm parameters, CRLs or unsigned attributes'],
  tp_digest: ['os algoritmos de resumo não são exatamente o do signatário', 'its digest algorithms are not exactly the signer\'s'],
  tp_cert: ['traz um certificado que não está em log.tsa_certs', 'it embeds a certificate that is not in log.tsa_certs'],
};

const CHAIN_PT = {
  'unable to get local issuer certificate': 'não há o certificado emissor',
  'certificate signature failure': 'a assinatura de um certificado não confere',
  'certificate has expired': 'um certificado expirou',
  'certificate is not yet valid': 'um certificado ainda não é válido',
  'unsupported certificate purpose': 'o certificado da TSA não é só para carimbo do tempo',
  'invalid CA certificate': 'um certificado emissor não é de AC',
  'self-signed certificate in certificate chain': 'a cadeia termina numa raiz que não é a AC informada',
  'self-signed certificate': 'o certificado da TSA é autoassinado e não é a AC informada',
  'path length constraint exceeded': 'limite de comprimento de cadeia excedido',
  'certificate chain too long': 'cadeia longa demais',
};

const TK = {
  tk_big: () => ['o token está vazio ou tem mais de 65536 bytes', 'the timestamp token is empty or larger than 65536 bytes'],
  tk_parse: () => ['não é um token RFC 3161 (ContentInfo DER com um TSTInfo)', 'not an RFC 3161 timestamp token (a DER ContentInfo with a TSTInfo)'],
  tk_noattrs: () => ['o signatário não tem atributos assinados', 'the signer has no signed attributes'],
  tk_nosigner: () => ['o certificado do signatário não está no token nem em log.tsa_certs', 'the signer\'s certificate is in neither the token nor log.tsa_certs'],
  tk_chain: (a) => [`o certificado da TSA não se verifica até a AC para carimbo do tempo: ${CHAIN_PT[a.arg] || a.arg}`,
    `the TSA certificate does not verify against the CA for time stamping: ${a.arg}`],
  tk_ess: () => ['o atributo ESS signing-certificate não identifica o certificado do signatário', 'the ESS signing-certificate attribute does not name the signer\'s certificate'],
  tk_digest: () => ['o resumo assinado (messageDigest) não é o do TSTInfo: o token foi alterado', 'the signed messageDigest is not the TSTInfo\'s: the token was altered'],
  tk_sig: () => ['a assinatura da TSA não confere: o token foi alterado', 'the TSA\'s signature does not verify: the token was altered'],
  tk_version: () => ['a versão do TSTInfo não é 1', 'the TSTInfo version is not 1'],
  tk_imprint: () => ['o token não é sobre este checkpoint (o resumo carimbado é outro)', 'the token is not over this checkpoint (the imprint differs)'],
  tk_tsaname: () => ['o nome da TSA no token não é o do certificado signatário', 'the TSA name in the token is not the signer certificate\'s'],
  tk_notsha256: () => ['o resumo carimbado não é SHA-256', 'the imprint is not SHA-256'],
  tk_ca: (a) => [`o arquivo de AC informado não serve: ${a.arg}`, `the CA file given cannot be used: ${a.arg}`],
};

const INC = {
  inc_nocp: () => ['não há checkpoint legível para conferir a prova', 'there is no readable checkpoint to check the proof against'],
  inc_beyond: (r) => [`a posição está além do tamanho ${r.size} da árvore do checkpoint`, `the index is beyond the checkpoint's tree size ${r.size}`],
  inc_bad: () => ['a prova não leva do hash da entrada à raiz do checkpoint: a entrada, sua posição ou a prova foi alterada',
    'the proof does not lead from the entry\'s hash to the checkpoint\'s root: the entry, its index or the proof was changed'],
  inc_ok: (r) => [`o hash da entrada e sua prova de ${r.n} hashes levam à raiz da árvore de ${r.size} do checkpoint`,
    `the entry's hash and its ${r.n}-hash proof lead to the root of the checkpoint's tree of ${r.size}`],
};

const EN = {
  en_notobj: ['a entrada não é um objeto JSON (ou repete uma chave)', 'the entry is not a JSON object (or repeats a key)'],
  en_v: ['"v" não é 1', '"v" is not 1'],
  en_type: ['falta "type"', '"type" is missing'],
  en_time: ['falta "time"', '"time" is missing'],
  en_other: ['é um evento de outra notificação', 'it is an event of another notice'],
};

// Why a PDF's signature does not hold (pdf.js pdfSignature).
const PS = {
  ps_unreadable: ['o PDF não pode ser lido', 'the PDF cannot be read'],
  ps_subfilter: ['a assinatura não é um CMS destacado (/SubFilter ETSI.CAdES.detached)', 'the signature is not a detached CMS (/SubFilter ETSI.CAdES.detached)'],
  ps_contents: ['a assinatura não tem um /Contents hexadecimal no próprio arquivo', 'the signature has no hex /Contents in the file itself'],
  ps_range: ['o /ByteRange não cobre o arquivo menos o seu /Contents (deixa bytes de fora, ou bytes foram movidos depois da assinatura)',
    'its /ByteRange does not cover the file but its /Contents (it leaves bytes out, or bytes were moved after signing)'],
  ps_cms: ['o /Contents não é um CMS SignedData que se possa verificar', 'the /Contents is not a CMS SignedData that can be checked'],
  ps_nosigner: ['o certificado do signatário não está na assinatura', 'the signer\'s certificate is not in the signature'],
  ps_digest: ['o resumo assinado não é o dos bytes assinados: o PDF foi alterado depois de assinado', 'the signed digest is not the signed bytes\': the PDF was changed after it was signed'],
  ps_sig: ['a assinatura não confere com o certificado do signatário: o PDF foi alterado depois de assinado', 'the signature does not verify with the signer\'s certificate: the PDF was changed after it was signed'],
};

const whose = (l, w) => (w === 'given' ? ['a chave informada por você', 'the key given to the verifier']
  : ['a chave que está no próprio recibo', 'the key inside the receipt'])[l];

const D = {
  ps_ok: (a) => [`o PDF é assinado por ${a.signer} e não mudou desde então: suas páginas são as assinadas (a cadeia do certificado não é julgada aqui: abra-o num leitor de PDF que confie na AC do operador)`,
    `the PDF is signed by ${a.signer} and unchanged since: its pages are the ones signed (the certificate chain is not judged here: open it in a PDF reader that trusts the operator's CA)`],
  ps_none: () => ['o PDF não está assinado (nenhum campo de assinatura do seu /AcroForm leva a uma assinatura): nada comprova o que suas páginas dizem',
    'the PDF is not signed (no signature field of its /AcroForm leads to a signature): nothing proves what its pages say'],
  ps_partial: (a) => [`a assinatura é válida, mas cobre só os primeiros ${a.covered} dos ${a.size} bytes do arquivo, não o arquivo inteiro: ${a.added} bytes foram acrescentados depois da assinatura (uma atualização incremental), e podem mudar o que as páginas mostram`,
    `the signature is valid but covers only the first ${a.covered} of the file's ${a.size} bytes, not the whole file: ${a.added} bytes were added after signing (an incremental update), and they can change what the pages show`],
  ps_bad: (a) => {
    const why = PS[a.why] || [a.why, a.why];
    return [`a assinatura do PDF não vale: ${why[0]}`, `the PDF's signature does not hold: ${why[1]}`];
  },
  ps_skip: (a) => [`não verificado neste navegador (${a.what}): as páginas não estão comprovadas aqui, use selo verify`,
    `not checked in this browser (${a.what}): the pages are not proven here, use selo verify`],
  internal: (a) => [`erro inesperado ao verificar: ${a.text}`, `unexpected error while checking: ${a.text}`],
  fmt_empty: () => ['não é um recibo: arquivo vazio', 'not a receipt: empty input'],
  fmt_big: () => ['não é um recibo: maior que 64 MiB', 'not a receipt: larger than 64 MiB'],
  fmt_json: (a) => [`não é um documento JSON (linha ${a.line}, coluna ${a.col}: ${a.text})`, `not a JSON document (line ${a.line}, column ${a.col}: ${a.text})`],
  fmt_noformat: () => ['é JSON, mas não um recibo Selo (sem o campo "format")', 'JSON, but not a Selo receipt (no "format" field)'],
  fmt_other: (a) => [`o formato é "${a.f}"; esta página lê selo-receipt/v1`, `format is "${a.f}"; this verifier reads selo-receipt/v1`],
  fmt_problem: (a, l) => {
    const f = P[a.p.msg];
    const t = f ? f(a.p.args)[l] : a.p.msg;
    return [t + (a.more ? ' (e outros problemas)' : ''), t + (a.more ? ' (and more problems)' : '')];
  },
  fmt_ok: (a) => [`selo-receipt/v1, todos os campos presentes e bem formados; ${a.n} evento${a.n === 1 ? '' : 's'}, ${a.eml ? 'com a mensagem' : 'forma curta (sem a mensagem)'}`,
    `selo-receipt/v1, every field present and well formed; ${a.n} event${a.n === 1 ? '' : 's'}, ${a.eml ? 'with the message bytes' : 'short form (no message bytes)'}`],
  notice_bad: (a) => [`"${a.id}" não é um id de notificação (26 caracteres de base32 Crockford)`, `"${a.id}" is not a notice id (26 characters of Crockford base32)`],
  notice_ok: (a) => [`o recibo é da notificação ${a.id}`, `the receipt is for notice ${a.id}`],
  sig_keybad: (a, l) => [`${whose(0, a.whose)} não pode ser usada: ${vk(0, a)}`, `${whose(1, a.whose)} cannot be used: ${vk(1, a)}`],
  sig_bad: (a, l) => {
    const why = NOTE[a.why] ? NOTE[a.why](a.wargs) : [a.why, a.why];
    return [`o checkpoint não está validamente assinado por ${whose(0, a.whose)} (${a.name} ${a.id}): ${why[0]}`,
      `the checkpoint is not validly signed by ${whose(1, a.whose)} (${a.name} ${a.id}): ${why[1]}`];
  },
  sig_noed25519: () => ['este navegador não verifica assinaturas Ed25519: use um navegador atual ou selo verify', 'this browser cannot check Ed25519 signatures: use a current browser or selo verify'],
  sig_ok: (a) => [`o checkpoint tem uma assinatura Ed25519 válida de ${a.name} (ID ${a.id}), ${whose(0, a.whose)}${a.differs ? '; o recibo indica outra chave' : ''}`,
    `the checkpoint carries a valid Ed25519 signature by ${a.name} (key ID ${a.id}), ${whose(1, a.whose)}${a.differs ? '; the receipt names a different key' : ''}`],
  kp_none: (a) => [`a chave do log veio do próprio recibo (${a.vkey}): compare-a com a chave publicada pelo operador, ou informe-a acima`,
    `the log key came from the receipt itself (${a.vkey}): compare it with the key the operator publishes, or give it above`],
  kp_diff: (a) => [`o recibo indica a chave ${a.vkey}, não a informada (${a.given}): foi alterado ou é de outro log`,
    `the receipt names the log key ${a.vkey}, not the key given (${a.given}): it was altered or belongs to another log`],
  kp_ok: () => ['a chave do log é a informada por você, e a que o recibo indica', 'the log key is the one given to the verifier, and the one the receipt names'],
  org_parse: (a) => [`o texto do checkpoint não é um checkpoint C2SP: ${CP[a.why][0]}`, `the checkpoint text is not a C2SP checkpoint: ${CP[a.why][1]}`],
  org_mismatch: (a) => [`a origem "${a.origin}" do checkpoint não é o nome da chave conferida ("${a.key}")`, `the checkpoint's origin "${a.origin}" is not the name of the key checked ("${a.key}")`],
  org_ok: (a) => [`log ${a.origin}, árvore de ${a.size} entradas, raiz ${a.root}; a origem é o nome da chave que assinou`,
    `log ${a.origin}, tree size ${a.size}, root ${a.root}; the origin is the signing key's name`],
  ts_chain: (a) => a.why === 'chain_link'
    ? [`os certificados da TSA não formam uma cadeia: log.tsa_certs[${a.i}] não é assinado pelo certificado seguinte`, `the TSA certificates do not form a chain: log.tsa_certs[${a.i}] is not signed by the certificate after it`]
    : [`os certificados da TSA não formam uma cadeia: o último de log.tsa_certs (${a.i}) não é uma raiz autoassinada`, `the TSA certificates do not form a chain: the last of log.tsa_certs (${a.i}) is not a self-signed root`],
  ts_parts: (a) => [`o token de carimbo do tempo foi alterado fora da sua assinatura: ${TP[a.why][0]}`, `the timestamp token was altered outside its signature: ${TP[a.why][1]}`],
  ts_bad: (a) => {
    const why = TK[a.why] ? TK[a.why](a) : [a.why, a.why];
    return [`o carimbo do tempo RFC 3161 não confere sobre o SHA-256 do checkpoint (${a.hex}...): ${why[0]}`,
      `the RFC 3161 timestamp does not verify over SHA-256 of the checkpoint (${a.hex}...): ${why[1]}`];
  },
  ts_unsupported: (a) => [`não verificado no navegador (${a.what}): use selo verify`, `not checked in the browser (${a.what}): use selo verify`],
  ts_skip: (a) => [`o token diz ${a.when} (UTC) e é sobre este checkpoint, mas ${a.what} não pode ser verificado neste navegador: não verificado aqui, use selo verify`,
    `the token says ${a.when} (UTC) and is over this checkpoint, but ${a.what} cannot be checked in this browser: not checked here, use selo verify`],
  ts_ok: (a) => [`carimbo do tempo RFC 3161 sobre o SHA-256 do checkpoint (${a.hex}...): hora ${a.when} (UTC), TSA ${a.tsa}, cadeia até ${a.root}`,
    `RFC 3161 timestamp over SHA-256 of the checkpoint (${a.hex}...): time ${a.when} (UTC), TSA ${a.tsa}, chain to ${a.root}`],
  tp_ok: () => ['o certificado da TSA foi conferido com a(s) AC informada(s) por você', 'the TSA\'s certificate was checked against the CA certificates given to the verifier'],
  tp_none: (a) => [`a AC da TSA veio do próprio recibo (${a.root}): compare-a com a AC publicada pela TSA, ou informe-a acima`,
    `the TSA's CA came from the receipt itself (${a.root}): compare it with the TSA's published CA, or give it above`],
  inc: (a, l) => {
    const r = INC[a.r.why](a.r);
    return [`evento #${a.idx} (${a.type}): ${r[0]}`, `event #${a.idx} (${a.type}): ${r[1]}`];
  },
  inc_rest_fail: (a) => [`${a.failed} dos eventos a partir de #${a.from} falham, o primeiro #${a.first} (${a.type})`, `${a.failed} of events #${a.from} and after fail, first #${a.first} (${a.type})`],
  inc_rest_ok: (a) => [`os ${a.n} eventos a partir de #${a.from}: a prova de cada entrada leva à raiz do checkpoint`, `the ${a.n} events from #${a.from} on: every entry's proof leads to the checkpoint's root`],
  en_bad: (a) => [`evento #${a.idx}: ${EN[a.why][0]}`, `event #${a.idx}: ${EN[a.why][1]}`],
  en_ok: (a) => [`as ${a.n} entradas são eventos versão 1 da notificação ${a.notice}`, `all ${a.n} entries are version-1 events of notice ${a.notice}`],
  to_notime: (a) => [`o evento #${a.idx} não tem "time" RFC 3339`, `event #${a.idx} has no RFC 3339 "time"`],
  to_back: (a) => [`o evento #${a.idx} (${a.type}) tem data anterior à do evento registrado antes dele`, `event #${a.idx} (${a.type}) is dated before the event logged ahead of it`],
  to_first: (a) => [`o primeiro evento é ${a.type}, não submission_accepted`, `the first event is ${a.type}, not submission_accepted`],
  to_issued: (a) => [`issued_at (${a.at}) não é uma hora posterior ao último evento`, `issued_at (${a.at}) is not a time after the last event`],
  to_ok: (a) => [`${a.n} eventos de ${a.a} a ${a.b} (UTC) na ordem do log, o primeiro submission_accepted; recibo emitido em ${a.at}`,
    `${a.n} events from ${a.a} to ${a.b} (UTC) in log order, the first submission_accepted; receipt issued ${a.at}`],
  bt_cannot: () => ['não pode ser verificado: o carimbo do tempo não se verificou', 'cannot be checked: the timestamp did not verify'],
  bt_after: (a) => [`o evento #${a.idx} (${a.type}) tem data ${a.t || '(sem hora)'}, depois do carimbo ${a.ts}`, `event #${a.idx} (${a.type}) is dated ${a.t || '(no time)'}, after the timestamp's ${a.ts}`],
  bt_ok: (a) => [`todos os eventos têm data até a do carimbo do tempo (${a.ts}, tolerância de 1 s): já existiam quando ele foi feito`,
    `every event is dated no later than the timestamp (${a.ts}, 1 s tolerance): they existed when it was made`],
  bt_unverified: (a) => [`todos os eventos têm data até a hora que o token declara (${a.ts}), mas a assinatura do token não foi verificada aqui`,
    `every event is dated no later than the time the token states (${a.ts}), but the token's signature was not checked here`],
  md_notsealed: (a) => [`message.sha256 não é o resumo selado no evento #${a.idx} (content_sealed)`, `message.sha256 is not the digest sealed in event #${a.idx} (content_sealed)`],
  md_none: () => ['nenhum evento content_sealed no recibo: nada sela a mensagem', 'no content_sealed event in the receipt: nothing seals the message'],
  md_short: (a) => [`o SHA-256 ${a.sha}... da mensagem é o selado no evento #${a.idx}; forma curta: sem os bytes da mensagem`,
    `message SHA-256 ${a.sha}... is the one sealed in event #${a.idx}; short form: no message bytes`],
  md_hash: (a) => [`os bytes da mensagem dão o resumo ${a.hex}..., não o selado ${a.sha}...: a mensagem foi alterada`,
    `the message bytes hash to ${a.hex}..., not to the sealed ${a.sha}...: the message was changed`],
  md_size: (a) => [`a mensagem tem ${a.n} bytes, o evento selado diz ${a.size}`, `the message has ${a.n} bytes, the sealed event says ${a.size}`],
  md_ok: (a) => [`os ${a.n} bytes da mensagem dão o resumo ${a.hex}..., o selado no evento #${a.idx}`, `the ${a.n} message bytes hash to ${a.hex}..., the digest sealed in event #${a.idx}`],
  ds_mismatch: (a) => [`o valor revelado para ${a.k}... não corresponde a esse compromisso com o sal: o valor ou o sal foi alterado`,
    `the value disclosed for ${a.k}... does not match that commitment under the salt: the value or the salt was changed`],
  ds_nocommit: (a) => [`${a.k}... foi revelado, mas nenhuma entrada se compromete com ele`, `${a.k}... is disclosed but no entry commits to it`],
  ds_none: () => ['nada revelado', 'nothing disclosed'],
  ds_ok: (a) => [`${a.n} valor${a.n === 1 ? '' : 'es'} revelado${a.n === 1 ? '' : 's'} corresponde${a.n === 1 ? '' : 'm'} aos compromissos das entradas (${a.names})`,
    `${a.n} disclosed value${a.n === 1 ? '' : 's'} match${a.n === 1 ? 'es' : ''} the commitments in the entries (${a.names})`],
};

// The detail line of a check, in lang, kept to one printable line.
export function detail(lang, msg, args) {
  const l = lang === 'en' ? 1 : 0;
  const f = D[msg];
  let s;
  try { s = f ? f(args || {}, l)[l] : msg; } catch (e) { s = msg; }
  return String(s).replace(/[\u0000-\u001f\u007f]/g, '?');
}
