/* `hookbridge journal verify|ls|cat`: offline, read-only views of a journal
 * directory, for forensics on a copy while no bridge runs. They read the
 * segments through hb_journal_scan (the recovery code, read-only), so a
 * record counts here exactly when the bridge would count it, and they never
 * create, change or delete a file. Main thread of the command only. */
#ifndef HB_CLI_JOURNAL_H
#define HB_CLI_JOURNAL_H

/* argv[0] is "journal"; returns the process exit code (0 sound / done,
 * 1 damage or failure, 2 usage). */
int hb_cli_journal(int argc, char **argv);

#endif
