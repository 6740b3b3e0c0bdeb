# Installed as /etc/request-tracker5/RT_SiteConfig.d/99-toolkit-tests.pm by
# toolkit's scripts/ticket-systems.sh. It changes nothing unless
# TOOLKIT_RT_DB is set, which only that script does for the RT it starts.
if ($ENV{TOOLKIT_RT_DB}) {
    Set($DatabaseName, $ENV{TOOLKIT_RT_DB});
    Set($WebPath, "");
    Set($WebDomain, "127.0.0.1");
    Set($WebPort, $ENV{TOOLKIT_RT_PORT});
    Set($WebBaseURL, "http://127.0.0.1:$ENV{TOOLKIT_RT_PORT}");
    # bcrypt at RT's default cost makes every token check take ~0.2 s.
    Set($BcryptCost, 4);
    Set($LogToSyslog, undef);
    Set($LogToSTDERR, "error");
}
1;
