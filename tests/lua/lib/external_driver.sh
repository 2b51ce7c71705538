#!/bin/sh
# A driver of the external strategy for tests/lua/test_external.lua, in plain sh: it reads the
# engine's messages on standard input, appends each to LOG, and answers ask k with the point
# (0.k, k mod 5) of the box [0, 1] x {0, ..., 4} (in any other dimension d, 0.k in every coordinate);
# MODE makes its answer to ask 3 wrong on purpose.
#   external_driver.sh MODE LOG    MODE: good, short, nan, outside, fraction, error, text, nul, exit
mode=$1
log=$2
while IFS= read -r line; do
  printf '%s\n' "$line" >>"$log"
  case $line in
  *'"protocol":'*)
    d=${line#*\"d\":}
    d=${d%%,*}
    ;;
  *'"ask":'*)
    k=${line#*\"ask\":}
    k=${k%\}}
    if [ "$k" = 3 ]; then
      case $mode in
      short) echo '{"x":[0.5]}'; continue ;;
      nan) echo '{"x":[NaN,1]}'; continue ;;
      outside) echo '{"x":[1.5,1]}'; continue ;;
      fraction) echo '{"x":[0.5,1.5]}'; continue ;;
      error) echo '{"error":"the sampler gave up"}'; continue ;;
      text) echo 'x = 0.5, 1'; continue ;;
      nul) printf '{"x":[0.5,\00001]}\n'; continue ;;
      exit) exit 0 ;;
      esac
    fi
    if [ "$d" = 2 ]; then
      echo "{\"x\":[0.$k,$((k % 5))]}"
    else
      x=0.$k
      j=1
      while [ $j -lt "$d" ]; do x="$x,0.$k"; j=$((j + 1)); done
      echo "{\"x\":[$x]}"
    fi
    ;;
  esac
done
