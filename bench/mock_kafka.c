/* Kafka for the benchmark without a JVM: librdkafka's in-process mock
 * cluster, so that no broker competes with hookbridge for the two cores.
 *
 *   mock_kafka serve TOPIC...        create the topics, print
 *                                    "KAFKA_BROKERS=host:port" and run until
 *                                    SIGTERM or SIGINT
 *   mock_kafka count BROKERS TOPIC... print the sum of the high watermarks of
 *                                    every partition of the topics (what was
 *                                    published: the producer is idempotent, so
 *                                    one offset is one message); works against
 *                                    a real broker too
 *
 * Built by bench/run.sh with cc and pkg-config rdkafka, or by CMake with
 * -DHB_BENCH=ON. */
#define _POSIX_C_SOURCE 200809L /* sigaction, pause */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Partitions per topic: hookbridge keys by app_id, so the benchmark's single
 * workspace lands on one partition anyway; more would only cost memory. */
#define MOCK_PARTITIONS 1

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static rd_kafka_t *new_handle(const char *brokers)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (brokers && rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof(err)) !=
                       RD_KAFKA_CONF_OK) {
        fprintf(stderr, "mock_kafka: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "mock_kafka: %s\n", err);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

static int serve(int ntopics, char **topics)
{
    /* The handle only hosts the cluster: the mock brokers run on their own
     * thread and listen on loopback ports chosen by the kernel. */
    rd_kafka_t *rk = new_handle(NULL);
    if (!rk)
        return 1;
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, 1);
    if (!mc) {
        fprintf(stderr, "mock_kafka: cannot create the mock cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    for (int i = 0; i < ntopics; i++) {
        rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, topics[i], MOCK_PARTITIONS, 1);
        if (e) {
            fprintf(stderr, "mock_kafka: topic %s: %s\n", topics[i], rd_kafka_err2str(e));
            rd_kafka_mock_cluster_destroy(mc);
            rd_kafka_destroy(rk);
            return 1;
        }
    }
    printf("KAFKA_BROKERS=%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    while (!stop_requested)
        pause();
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}

/* Sum of the high watermarks of one topic, or -1 on error. */
static long long topic_count(rd_kafka_t *rk, const char *name)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, name, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, 10000);
    rd_kafka_topic_destroy(t);
    if (!e && md->topic_cnt != 1)
        e = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    else if (!e)
        e = md->topics[0].err;
    if (e) {
        fprintf(stderr, "mock_kafka: metadata of %s: %s\n", name, rd_kafka_err2str(e));
        if (md)
            rd_kafka_metadata_destroy(md);
        return -1;
    }
    long long sum = 0;
    for (int p = 0; p < md->topics[0].partition_cnt; p++) {
        int64_t lo = 0, hi = 0;
        e = rd_kafka_query_watermark_offsets(rk, name, md->topics[0].partitions[p].id, &lo, &hi,
                                             10000);
        if (e) {
            fprintf(stderr, "mock_kafka: watermarks of %s/%d: %s\n", name, p, rd_kafka_err2str(e));
            rd_kafka_metadata_destroy(md);
            return -1;
        }
        sum += hi;
    }
    rd_kafka_metadata_destroy(md);
    return sum;
}

static int count(const char *brokers, int ntopics, char **topics)
{
    rd_kafka_t *rk = new_handle(brokers);
    if (!rk)
        return 1;
    long long total = 0;
    int rc = 0;
    for (int i = 0; i < ntopics && rc == 0; i++) {
        long long n = topic_count(rk, topics[i]);
        if (n < 0)
            rc = 1;
        else
            total += n;
    }
    rd_kafka_destroy(rk);
    if (rc == 0)
        printf("%lld\n", total);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "serve") == 0)
        return serve(argc - 2, argv + 2);
    if (argc >= 4 && strcmp(argv[1], "count") == 0)
        return count(argv[2], argc - 3, argv + 3);
    fprintf(stderr, "usage: %s serve TOPIC... | count BROKERS TOPIC...\n", argv[0]);
    return 2;
}
