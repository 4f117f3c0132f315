(function(){
  function value(td){var v=td.getAttribute('data-v');return v===null?td.textContent.trim():v;}
  document.querySelectorAll('table.sortable').forEach(function(table){
    table.querySelectorAll('thead th').forEach(function(th,col){
      th.addEventListener('click',function(){
        var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
        var dir=th.classList.contains('desc')?1:-1;
        if(!th.classList.contains('asc')&&!th.classList.contains('desc'))dir=th.hasAttribute('data-asc')?1:-1;
        table.querySelectorAll('thead th').forEach(function(h){h.classList.remove('asc','desc');});
        th.classList.add(dir>0?'asc':'desc');
        rows.sort(function(a,b){
          var x=value(a.cells[col]),y=value(b.cells[col]);
          if(x===''&&y==='')return 0;if(x==='')return 1;if(y==='')return -1;
          var nx=Number(x),ny=Number(y);
          if(!isNaN(nx)&&!isNaN(ny))return dir*(nx-ny);
          return dir*x.localeCompare(y);
        });
        rows.forEach(function(r){body.appendChild(r);});
      });
    });
  });
  document.querySelectorAll('input[data-run]').forEach(function(box){
    box.addEventListener('change',function(){
      var run=box.getAttribute('data-run');
      document.body.classList.toggle('hide-'+run,!box.checked);
      document.querySelectorAll('input[data-run="'+run+'"]').forEach(function(b){b.checked=box.checked;b.parentNode.classList.toggle('off',!box.checked);});
    });
  });
  function frame(slider,j){
    var row=slider.closest('tr'),epochs=slider.getAttribute('data-epochs').split(',');
    slider.value=j;
    row.querySelectorAll('img[data-frame]').forEach(function(im){im.hidden=im.getAttribute('data-frame')!==String(j);});
    row.querySelector('.epoch-label').textContent='epoch '+epochs[j];
  }
  var sliders=document.querySelectorAll('input.timeline');
  sliders.forEach(function(s){s.addEventListener('input',function(){frame(s,Number(s.value));});});
  // report.html#epoch=E: every timeline at epoch E, or the nearest it has.
  var asked=/epoch=(\d+)/.exec(location.hash);
  if(asked)sliders.forEach(function(s){
    var e=Number(asked[1]),epochs=s.getAttribute('data-epochs').split(',').map(Number),best=0;
    epochs.forEach(function(x,i){if(Math.abs(x-e)<Math.abs(epochs[best]-e))best=i;});
    frame(s,best);
  });
  var only=document.getElementById('only-diff');
  if(only)only.addEventListener('change',function(){document.getElementById('config-table').classList.toggle('only-diff',only.checked);});
  document.body.setAttribute('data-ready','1');
})();
