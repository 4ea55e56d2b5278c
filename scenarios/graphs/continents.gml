# Six locations on three continents, joined the way submarine cables run rather than all to all, in
# Shadow's network graph format (GML). Latencies are one way, rounded from the median round-trip times of
# experiment/latency.py's region table; the long-haul links lose one packet in a thousand. Each self-loop is
# the path between two nodes at that location. eu-central is where the path from Europe to south-east Asia
# turns (Suez): with graph-small.yaml no node sits there, and its router still carries that traffic.
graph [
  directed 0
  node [ id 0 label "eu-west"      host_bandwidth_down "1 Gbit" host_bandwidth_up "1 Gbit" ]
  node [ id 1 label "eu-central"   host_bandwidth_down "1 Gbit" host_bandwidth_up "1 Gbit" ]
  node [ id 2 label "na-east"      host_bandwidth_down "1 Gbit" host_bandwidth_up "1 Gbit" ]
  node [ id 3 label "na-west"      host_bandwidth_down "1 Gbit" host_bandwidth_up "1 Gbit" ]
  node [ id 4 label "ap-northeast" host_bandwidth_down "1 Gbit" host_bandwidth_up "1 Gbit" ]
  node [ id 5 label "ap-southeast" host_bandwidth_down "1 Gbit" host_bandwidth_up "1 Gbit" ]
  edge [ source 0 target 0 latency "3 ms" packet_loss 0.0 ]
  edge [ source 1 target 1 latency "3 ms" packet_loss 0.0 ]
  edge [ source 2 target 2 latency "4 ms" packet_loss 0.0 ]
  edge [ source 3 target 3 latency "4 ms" packet_loss 0.0 ]
  edge [ source 4 target 4 latency "3 ms" packet_loss 0.0 ]
  edge [ source 5 target 5 latency "3 ms" packet_loss 0.0 ]
  edge [ source 0 target 1 latency "7 ms"  packet_loss 0.0 ]
  edge [ source 0 target 2 latency "37 ms" packet_loss 0.001 ]
  edge [ source 2 target 3 latency "32 ms" packet_loss 0.0 ]
  edge [ source 3 target 4 latency "52 ms" packet_loss 0.001 ]
  edge [ source 4 target 5 latency "35 ms" packet_loss 0.0 ]
  edge [ source 1 target 5 latency "75 ms" packet_loss 0.001 ]
]
