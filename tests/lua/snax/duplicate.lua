-- A snax file that defines one method twice: its interface raises.
function response.x() end
function response.x() end
