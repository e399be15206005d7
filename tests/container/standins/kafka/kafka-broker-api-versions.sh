#!/bin/sh
exec java -XX:TieredStopAtLevel=1 -XX:-UsePerfData -Dlog4j2.configurationFile=file:/opt/kafka/config/tools-log4j2.properties \
  -cp '/opt/kafka/libs/*' org.apache.kafka.tools.BrokerApiVersionsCommand "$@"
