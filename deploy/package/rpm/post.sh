# dns64d %post ($1: 1 on install, 2 on upgrade): the system user dns64d; on install
# dns64d.service is enabled, and started where systemd runs and /etc/dns64d/dns64d.toml
# passes dns64d --check-config; on upgrade running units are restarted. dns64d-shim.service
# is not enabled (it binds 127.0.0.1:53 like the network server).
if ! getent passwd dns64d >/dev/null; then
    useradd --system --user-group --home-dir /nonexistent --no-create-home \
        --shell /sbin/nologin --comment "dns64d DNS64 server" dns64d || :
fi
if command -v systemctl >/dev/null 2>&1; then
    if [ "$1" -eq 1 ]; then
        systemctl --no-reload enable dns64d.service >/dev/null 2>&1 || :
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || :
        if [ "$1" -eq 1 ]; then
            if dns64d --check-config --config /etc/dns64d/dns64d.toml >/dev/null 2>&1; then
                systemctl start dns64d.service >/dev/null 2>&1 || :
            else
                echo "dns64d: /etc/dns64d/dns64d.toml does not pass dns64d --check-config:" \
                    "dns64d.service is enabled but not started. Fix the file, then: systemctl start dns64d" >&2
            fi
        else
            systemctl try-restart dns64d.service dns64d-shim.service >/dev/null 2>&1 || :
        fi
    fi
fi
