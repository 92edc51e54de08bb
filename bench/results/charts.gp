set terminal svg size 900,480 dynamic font "sans,11"
set datafile separator "\t"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set grid ytics
set key top left
set xtics rotate by -30

set output "cpu-per-request.svg"
set title "Proxy CPU per request (us, lower is better; direct = the pod itself)"
set ylabel "CPU us / request"
plot "cpu.dat" using 2:xtic(1) title "handshake (new sid)", "cpu.dat" using 3 title "polling, known sid", "cpu.dat" using 4 title "room-key request"

set output "cpu-per-frame.svg"
set title "Proxy CPU per WebSocket frame (us, lower is better; direct = the pod itself)"
set ylabel "CPU us / frame"
plot "cpu.dat" using 6:xtic(1) title "rooms: relayed frames, both ways"

set output "fanout-latency-cdf.svg"
set style data lines
unset xtics
set xtics
set logscale x
set title "Fan-out latency CDF (host event -> every participant of the room), round 1"
set xlabel "latency (ms, log scale)"
set ylabel "fraction of deliveries"
set key bottom right
plot "cdf-pr1.dat" using 1:2 with lines lw 2 lc rgb "#1f5fbf" dt 1 title "pod-router 1t", "cdf-hap1.dat" using 1:2 with lines lw 2 lc rgb "#c0392b" dt 1 title "haproxy 1t"
unset logscale x

set output "memory-per-tunnel.svg"
set style data linespoints
set title "Proxy memory per idle WebSocket tunnel (RSS growth / tunnels)"
set xlabel "idle tunnels"
set ylabel "bytes per tunnel"
set key top right
set xtics (5000, 9000)
set yrange [0:*]
plot "tunnels.dat" using 1:2 with linespoints lw 2 lc rgb "#1f5fbf" dt 1 pt 7 title "pod-router 1t", "tunnels.dat" using 1:3 with linespoints lw 2 lc rgb "#c0392b" dt 1 pt 7 title "haproxy 1t"
