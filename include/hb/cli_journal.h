/* `hookbridge journal verify|ls|cat|repair`: offline views of a journal
 * directory, for forensics on a copy while no bridge runs. They read the
 * segments through hb_journal_scan (the recovery code, read-only), so a
 * record counts here exactly when the bridge would count it. verify, ls and
 * cat never create, change or delete a file; repair --cut-at SEQ cuts
 * records from SEQ on and moves what it cuts aside, nothing else. Main
 * thread of the command only; no bridge may run on the directory. */
#ifndef HB_CLI_JOURNAL_H
#define HB_CLI_JOURNAL_H

#include <stdint.h>

/* argv[0] is "journal"; returns the process exit code (0 sound / done,
 * 1 damage or failure, 2 usage). */
int hb_cli_journal(int argc, char **argv);

/* A time of the command line: RFC 3339 in UTC (fraction optional), a date,
 * or an age before now (90s, 15m, 2h, 1d). 0, or -1 when it is none. */
int hb_cli_parse_time(const char *s, uint64_t *ms);

#endif
