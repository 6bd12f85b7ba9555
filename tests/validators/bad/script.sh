#!/bin/sh
# Defect: unquoted expansion (SC2086) and a useless cat (SC2002, style level).
cat /etc/hostname | grep $1
