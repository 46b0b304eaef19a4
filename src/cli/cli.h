/* cli.h: private to the `selo` command: one function per subcommand and
 * the small argument parser they share. Exit codes (DESIGN): 0 ok,
 * 1 verification failed or not found, 2 usage or I/O error. */
#ifndef SELO_CLI_H
#define SELO_CLI_H

#define EXIT_OK 0
#define EXIT_NOTFOUND 1
#define EXIT_USAGE 2

/* Options of every subcommand: --name VALUE, --name=VALUE, or a flag. */
struct cli_opt {
	const char *name;  /* without the dashes */
	int takes_value;
	const char *value; /* set when seen ("" for a flag) */
};

/* Splits argv (after the subcommand) into known options and positionals.
 * -h/--help sets *help. Prints a clear message and returns -1 on an unknown
 * option or a missing value. */
int cli_parse(int argc, char **argv, struct cli_opt *opts, const char **pos, int maxpos, int *npos,
	      int *help);
const char *cli_get(const struct cli_opt *opts, const char *name);

int cmd_init(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_apikey(int argc, char **argv);
int cmd_submit(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_receipt(int argc, char **argv);
int cmd_log(int argc, char **argv);
int cmd_bounce(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_store(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_templates(int argc, char **argv);
int cmd_keys(int argc, char **argv);

#endif
