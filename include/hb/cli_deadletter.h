/* `hookbridge dead-letter ls|cat`: read the dead-letter files that the sink
 * runner writes, <data.dir>/dead-letter.<sink>.jsonl (one JSON line per
 * event, the file sink's fields plus "sink" and "error"). Read-only; main
 * thread of the command only. */
#ifndef HB_CLI_DEADLETTER_H
#define HB_CLI_DEADLETTER_H

/* argv[0] is "dead-letter"; returns the process exit code (0 done,
 * 1 failure, 2 usage). */
int hb_cli_dead_letter(int argc, char **argv);

#endif
