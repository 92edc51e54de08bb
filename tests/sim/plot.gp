# Plot of the last simulation run (tests/sim/run.sh):
#   gnuplot -e "dir='test-output/sim'; out='docs/img/scaling-sim.png'" tests/sim/plot.gp
# Debian package: gnuplot-nox. Top: room-aware (pack + desired-replicas HPA +
# rollout-backend.sh); bottom: the guide's CPU HPA + least-loaded +
# RollingUpdate. Shaded: the backend rollout; crosses: interrupted rooms.
if (!exists("dir")) dir = 'test-output/sim'
if (!exists("out")) out = 'docs/img/scaling-sim.png'
load dir.'/plotvars.gp'

set terminal pngcairo size 1100,900 font ",10" noenhanced
set output out
set multiplot layout 2,1 margins 0.07,0.93,0.07,0.95 spacing 0,0.08
set grid ytics
set key top right horizontal font ",9"
set xlabel "time (s, compressed 100x: 1 s = 100 s of Kubernetes and router timers)"
set ylabel "backend pods"
set y2label "active rooms"
set ytics nomirror
set y2tics
set yrange [0:max_replicas+2]
set y2range [0:(max_replicas+2)*3]
set xrange [0:*]

set title sprintf("room-aware: pack + podrouter_backend_desired_replicas HPA + rollout-backend.sh — %d rooms interrupted, pod-seconds %.2fx ideal", aware_interrupted, aware_ratio)
set object 1 rect from aware_roll_start, graph 0 to aware_roll_end, graph 1 fc rgb "#e8e8ff" fs solid 0.6 noborder behind
plot dir.'/room-aware.dat' u 1:10 w steps lw 2 lc rgb "#999999" dt 2 t "ideal", \
     '' u 1:5 w steps lw 2 lc rgb "#1f77b4" t "desired (router)", \
     '' u 1:3 w steps lw 2 lc rgb "#d62728" t "pods (actual)", \
     '' u 1:7 axes x1y2 w lines lw 1 lc rgb "#2ca02c" t "active rooms (right)", \
     dir.'/room-aware-interrupts.dat' u 1:(0.3) w points pt 2 ps 2 lc rgb "black" t "interrupted room"
unset object 1

set title sprintf("baseline (the guide): CPU 60 %% / memory 70 %% HPA + least-loaded + RollingUpdate — %d rooms interrupted, pod-seconds %.2fx ideal", base_interrupted, base_ratio)
set object 2 rect from base_roll_start, graph 0 to base_roll_end, graph 1 fc rgb "#e8e8ff" fs solid 0.6 noborder behind
plot dir.'/baseline.dat' u 1:10 w steps lw 2 lc rgb "#999999" dt 2 t "ideal", \
     '' u 1:6 w steps lw 2 lc rgb "#1f77b4" t "HPA desired (CPU/memory)", \
     '' u 1:3 w steps lw 2 lc rgb "#d62728" t "pods (actual)", \
     '' u 1:7 axes x1y2 w lines lw 1 lc rgb "#2ca02c" t "active rooms (right)", \
     dir.'/baseline-interrupts.dat' u 1:(0.3) w points pt 2 ps 2 lc rgb "black" t "interrupted room"
unset multiplot
