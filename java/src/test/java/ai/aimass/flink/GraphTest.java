package ai.aimass.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import java.nio.charset.StandardCharsets;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.graph.StreamGraph;
import org.apache.flink.streaming.api.graph.StreamNode;
import org.apache.flink.streaming.runtime.partitioner.BroadcastPartitioner;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;

class GraphTest {
    @Test
    void routeReadsTheRouteUpdatesBroadcast() throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        DataStream<Row> source = env.fromData(Types.ROW(PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO,
                Types.STRING, Types.INT, Types.LONG), Row.of(new byte[0], "t", 0, 0L));
        DataStream<byte[]> updates = env.fromData(PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO,
                "{\"kind\":\"ready\",\"token\":\"t\"}".getBytes(StandardCharsets.UTF_8));
        var routed = Graph.route(source, updates, Requests.header(), 4, 128, 8, 20, 1 << 20, "t", true);
        var outputs = Graph.outputs(Graph.microBatch(routed, 1 << 20));
        Graph.shadows(outputs).print();
        Graph.deadLetters(outputs).print();
        Graph.dedup(outputs, 60).print();
        StreamGraph graph = env.getStreamGraph();
        StreamNode route = graph.getStreamNodes().stream().filter(n -> n.getOperatorName().equals("route"))
                .findFirst().orElseThrow();
        assertEquals(2, route.getInEdges().size());
        assertInstanceOf(BroadcastPartitioner.class, route.getInEdges().stream()
                .filter(e -> e.getTypeNumber() == 2).findFirst().orElseThrow().getPartitioner());
    }
}
